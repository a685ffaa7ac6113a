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
  const groupLines = res.prompts.groups.map(
    (g) => `${g.name}: ${g.kept} prompts${g.dropped ? ` (${g.dropped} dropped)` : ""}`,
  );
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
      `Groups: ${groupLines.join("; ")}. Focus group (studied in depth): ${res.focusGroup}.`,
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
  }));
}
