/**
 * Writes a study's outputs — report.html (with its feature and graph pages, if any, sharing one
 * circuitscope-viz.<hash>.js), results.json, figures/*.svg — into a temporary sibling
 * directory and renames it into place at the end, so a failed or interrupted run leaves nothing
 * half-written at DIR. Only an earlier circuitscope report (with --overwrite) or an empty directory is replaced.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { featureReport } from "../neurons/feature-report.ts";
import { writeReportDir } from "../util/report-dir.ts";
import { writeFigureFiles } from "../viz/export/write-files.ts";
import { writeGraphPage } from "../viz/graph-page.ts";
import { renderHtmlReport } from "../viz/html/report.ts";
import { writeSharedVizScript } from "../viz/html/viz-script.ts";
import { modelSoftCap } from "./format.ts";
import { buildSections, toReportSections } from "./report.ts";
import type { StudyResults } from "./results.ts";

export interface WrittenStudy {
  dir: string;
  figures: string[];
  captions: { name: string; caption: string }[];
}

export async function writeStudy(
  results: StudyResults,
  outDir: string,
  opts: { overwrite?: boolean } = {},
): Promise<WrittenStudy> {
  const dir = resolve(outDir);
  const flag = { overwrite: opts.overwrite, flag: "--out", command: `study ${results.study.id}` };
  return writeReportDir(dir, flag, async (tmp) => {
    mkdirSync(join(tmp, "figures"), { recursive: true });
    const sections = buildSections(results);
    const figures: string[] = [];
    for (const s of sections) {
      for (const f of s.figures) {
        const main = f.name === results.study.mainFigure;
        await writeFigureFiles(join(tmp, "figures"), f.name, f.figure, { png: main });
        figures.push(`figures/${f.name}.svg`, ...(main ? [`figures/${f.name}.png`] : []));
        // Between figures, a Ctrl-C is acted on now (its handler removes the temporary directory),
        // not after the whole report is written.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    // With feature or graph pages beside report.html, every page loads the viz bundle from one file at the
    // report's top; report.html alone inlines it (self-contained, as a single --html page).
    const pages = 1 + (results.featurePages?.length ?? 0) + (results.graphPage ? 1 : 0);
    const vizScriptFor = pages > 1 ? writeSharedVizScript(tmp) : () => undefined;
    // The SAE features' pages, linked from the features section.
    for (const fp of results.featurePages ?? []) {
      mkdirSync(join(tmp, "features"), { recursive: true });
      const path = join(tmp, fp.file);
      writeFileSync(path, renderHtmlReport({ ...featureReport(fp.page), vizScript: vizScriptFor(path) }));
    }
    // The attribution graph's page, linked from its section.
    if (results.graphPage) {
      const { file, frontEnd, edgeThreshold } = results.graphPage;
      mkdirSync(join(tmp, "graph"), { recursive: true });
      const g = results.graph;
      writeGraphPage(join(tmp, file), frontEnd, {
        vizScript: vizScriptFor(join(tmp, file)),
        model: results.meta.model,
        finalSoftCap: modelSoftCap(results),
        edgeThreshold,
        ...(g ? { scores: { replacement: g.replacementScore, completeness: g.completenessScore } } : {}),
      });
    }
    const captions = sections.flatMap((s) => s.figures.map((f) => ({ name: f.name, caption: f.caption })));
    writeFileSync(
      join(tmp, "results.json"),
      `${JSON.stringify({ ...results, graphPage: undefined, captions }, null, 1)}\n`,
    );
    const html = renderHtmlReport({
      title: results.study.title,
      subtitle: `circuitscope study ${results.study.id} — model ${results.meta.model}, seed ${results.meta.seed}${results.meta.quick ? ", quick" : ""}`,
      sections: toReportSections(sections),
      vizScript: vizScriptFor(join(tmp, "report.html")),
    });
    writeFileSync(join(tmp, "report.html"), html);
    return { dir, figures, captions };
  });
}
