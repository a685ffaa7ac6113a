/**
 * Study results → report sections: Setup, the summary (findings generated from the numbers), then each
 * stage's own section. Every caption's numbers are read from the results (never written in advance).
 */
import type { ReportSection } from "../viz/html/report.ts";
import { STAGES } from "./pipeline.ts";
import type { StudyResults } from "./results.ts";
import type { StudySection } from "./stage.ts";

function setupSection(res: StudyResults): StudySection {
  const m = res.meta;
  const mirrors = new Map(res.groups.flatMap((g) => (g.mirrorOf ? [[g.name, g.mirrorOf]] : [])));
  const groupLines = res.prompts.groups.map((g) => {
    const m = mirrors.get(g.name);
    const of = g.templates !== undefined ? ` of ${g.templates} distinct texts` : "";
    return `${g.name}: ${g.kept} prompts${of}${g.dropped ? ` (${g.dropped} dropped)` : ""}${m ? ` (the texts of ${m.group} with clean and corrupted swapped: ${m.shared} shared)` : ""}`;
  });
  const templated = res.prompts.groups.some((g) => g.templates !== undefined);
  const dropReasons = new Map<string, number>();
  for (const d of res.prompts.dropped) dropReasons.set(d.reason, (dropReasons.get(d.reason) ?? 0) + 1);
  return {
    heading: "Setup",
    text: [
      res.study.question,
      `Model ${m.model} (${m.modelConfig.nLayers} layers, ${m.modelConfig.nHeads} heads, d_model ${m.modelConfig.dModel}), backend ${m.backend}, seed ${m.seed}${m.quick ? ", quick mode" : ""}; circuitscope ${m.version}, Node ${m.node}; run ${m.startedAt}, ${m.runSeconds.toFixed(0)} s.`,
      ...(m.stageSeconds
        ? [
            `Time per stage: ${Object.entries(m.stageSeconds)
              .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
              .join("; ")}.`,
          ]
        : []),
      ...(m.stagePeakRss
        ? [
            `Peak memory of the process when each stage ended: ${Object.entries(m.stagePeakRss)
              .map(([k, v]) => `${k} ${(v / 2 ** 30).toFixed(2)} GiB`)
              .join("; ")}.`,
          ]
        : []),
      `Prompts from ${res.prompts.source}. ${m.promptsText}`,
      `Groups: ${groupLines.join("; ")}. Focus group (studied in depth): ${res.focusGroup}.${mechanismLine(res)}`,
      ...(templated
        ? [
            "The prompts of a group are drawn from a fixed set of template texts (the counts above), so a 95% interval measures how much the numbers vary across these templates, not sampling error from a larger population of texts; another seed draws other templates where a group has more texts than prompts.",
          ]
        : []),
      res.prompts.dropped.length
        ? `Dropped pairs: ${[...dropReasons].map(([r, n]) => `${n} × ${r}`).join("; ")}.`
        : "No prompt pair was dropped by validation (single-token answers, equal lengths, the expected final token).",
      `Statistics: ${m.statsMethod}`,
      `Normalisation: ${m.normalisationRule}`,
      `Exact vs estimated numbers: ${Object.entries(m.provenance)
        .map(([k, v]) => `${k}: ${v}`)
        .join("; ")}.`,
      ...(m.omitted.length ? [`Left out: ${m.omitted.join("; ")}.`] : []),
    ].join("\n\n"),
    figures: [],
  };
}

function mechanismLine(res: StudyResults): string {
  const measured = res.groups.filter((g) => g.layerPatching).map((g) => g.name);
  return measured.length > 1
    ? ` The mechanism (per-position patching, each head's output, value and pattern, its attention to the cue) is measured on ${measured.join(", ")}; each statement about it names the groups it was measured on.`
    : "";
}

export function buildSections(res: StudyResults): StudySection[] {
  const sections = [setupSection(res)];
  if (res.findings?.length) {
    sections.push({
      heading: "What the numbers say",
      text: `${res.findings.map((f) => `• ${f.text}`).join("\n\n")}\n\nEach sentence is generated from the numbers in results.json (\`findings[].evidence\` lists them and the threshold used).`,
      figures: [],
    });
  }
  for (const stage of STAGES) sections.push(...stage.sections(res));
  return sections;
}

export function toReportSections(sections: readonly StudySection[]): ReportSection[] {
  return sections.map((s) => ({
    heading: s.heading,
    text: s.text,
    figures: s.figures.map((f) => ({ figure: f.figure, caption: f.caption })),
    ...(s.tables ? { tables: s.tables } : {}),
  }));
}
