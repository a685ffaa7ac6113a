/**
 * A stage of the study pipeline: it measures one thing (behaviour, head DLA, layer patching, ...) and
 * returns its typed slice of the results, then draws its own report section from the finished results.
 */

import type { Figure } from "../viz/figure.ts";
import type { ReportTable } from "../viz/html/report.ts";
import type { StudyContext } from "./context.ts";
import type { Finding, FocusResult, GroupResult, StudyResults } from "./results.ts";

export interface NamedFigure {
  /** The SVG file name (figures/NAME.svg); captions are keyed by it in results.json. */
  name: string;
  figure: Figure;
  caption: string;
}

export interface StudySection {
  heading: string;
  text?: string;
  figures: NamedFigure[];
  /** Numbers a caption would otherwise list, one row each. */
  tables?: ReportTable[];
}

/**
 * What a stage adds: fields of some groups' results, of the focus group's, or the comparisons. Groups are
 * keyed by their user-chosen names in a Map: a plain object would take "__proto__" or "constructor" as its own.
 */
export interface StageSlice {
  groups?: Map<string, Partial<GroupResult>>;
  focus?: Partial<FocusResult>;
  comparisons?: StudyResults["comparisons"];
  featurePages?: StudyResults["featurePages"];
  graph?: StudyResults["graph"];
  graphPage?: StudyResults["graphPage"];
}

export interface Stage<S extends StageSlice = StageSlice> {
  /** Shown in progress and in meta.stageSeconds. */
  name: string;
  run(ctx: StudyContext, res: StudyResults): S | Promise<S>;
  /** The stage's report section(s), drawn from the finished results (none when it measured nothing). */
  sections(res: StudyResults): StudySection[];
  /** Summary sentences generated from the stage's numbers, each with its evidence. */
  findings?(res: StudyResults): Finding[];
}

/** Merge a stage's slice into the results (the focus group's result is its group result, extended). */
export function applySlice(res: StudyResults, slice: StageSlice): void {
  for (const [name, part] of slice.groups ?? []) {
    const g = res.groups.find((x) => x.name === name);
    if (!g) throw new Error(`stage returned results for unknown group ${name}`);
    Object.assign(g, part);
    if (name === res.focusGroup) Object.assign(res.focus, part);
  }
  if (slice.focus) Object.assign(res.focus, slice.focus);
  if (slice.comparisons) res.comparisons = slice.comparisons;
  if (slice.featurePages) res.featurePages = slice.featurePages;
  if (slice.graph) res.graph = slice.graph;
  if (slice.graphPage) res.graphPage = slice.graphPage;
}
