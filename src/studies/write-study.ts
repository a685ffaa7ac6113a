/**
 * Writes a study's outputs — report.html, results.json, figures/*.svg — into a temporary sibling
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
    // The SAE features' pages, linked from the features section.
    for (const fp of results.featurePages ?? []) {
      mkdirSync(join(tmp, "features"), { recursive: true });
      writeFileSync(join(tmp, fp.file), renderHtmlReport(featureReport(fp.page)));
    }
    // The attribution graph's page, linked from its section.
    if (results.graphPage) {
      const { file, frontEnd, edgeThreshold } = results.graphPage;
      mkdirSync(join(tmp, "graph"), { recursive: true });
      const g = results.graph;
      writeGraphPage(join(tmp, file), frontEnd, {
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
    });
    writeFileSync(join(tmp, "report.html"), html);
    return { dir, figures, captions };
  });
}
