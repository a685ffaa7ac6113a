/**
 * The feature pages a graph page links to: one page per transcoder feature kept in the pruned graph (a
 * feature node at several positions is one page), named as the link template `FEATURE_PAGE_TEMPLATE` fills it.
 */
import { dirname, join, relative, resolve, sep } from "node:path";
import type { FrontEndGraph } from "../graphs/graph-files.ts";
import type { TranscoderSet } from "../graphs/transcoder-set.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { writeReportDir } from "../util/report-dir.ts";
import { frontEndNodeKind } from "../viz/graph-layout.ts";
import { writeSharedVizScript } from "../viz/html/viz-script.ts";
import { transcoderFeaturePageData } from "./feature-page.ts";
import { writeFeatureReport } from "./feature-report.ts";
import type { NeuronIndex } from "./neuron-index.ts";

/** A page's file name in the pages directory, `{layer}` and `{feature}` filled in by the graph page's links. */
export const FEATURE_PAGE_TEMPLATE = "L{layer}-F{feature}.html";

/** The graph page's link template to pages in `pagesDir`, relative to the page at `htmlPath` (they move together). */
export function featurePagesUrl(htmlPath: string, pagesDir: string): string {
  const rel = relative(dirname(resolve(htmlPath)), resolve(pagesDir))
    .split(sep)
    .join("/");
  return `${rel}/${FEATURE_PAGE_TEMPLATE}`;
}

/** The (layer, feature) pairs of the graph's feature nodes, each once, in node order. */
export function graphFeatures(graph: FrontEndGraph): { layer: number; feature: number }[] {
  const seen = new Set<string>();
  const out: { layer: number; feature: number }[] = [];
  for (const n of graph.nodes) {
    if (frontEndNodeKind(n) !== "feature") continue;
    const key = `${n.layer}/${n.feature}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ layer: Number(n.layer), feature: n.feature });
  }
  return out;
}

/**
 * Writes the pages into the new report directory `dir` (replacing only one an earlier run wrote, with
 * overwrite), with the viz bundle once beside them in `circuitscope-viz.<hash>.js`, which every page loads.
 */
export async function writeGraphFeaturePages(
  dir: string,
  model: HookedTransformer,
  set: TranscoderSet,
  graph: FrontEndGraph,
  opts: { index: NeuronIndex | null; setName: string; modelName: string; overwrite?: boolean; flag: string },
): Promise<number> {
  const features = graphFeatures(graph);
  await writeReportDir(dir, { overwrite: opts.overwrite, flag: opts.flag, command: "graph" }, (tmp) => {
    const vizScriptFor = writeSharedVizScript(tmp);
    for (const { layer, feature } of features) {
      const page = transcoderFeaturePageData(model, set, layer, feature, {
        index: opts.index,
        setName: opts.setName,
        modelName: opts.modelName,
      });
      const name = FEATURE_PAGE_TEMPLATE.replace("{layer}", String(layer)).replace(
        "{feature}",
        String(feature),
      );
      writeFeatureReport(join(tmp, name), page, { vizScript: vizScriptFor(join(tmp, name)) });
    }
  });
  return features.length;
}
