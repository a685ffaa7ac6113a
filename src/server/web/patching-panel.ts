/** Activation patching as a background job, drawn as a heatmap when it finishes. */
import type { Figure } from "../../viz/figure.ts";
// The request the server validates (type only: erased from the browser bundle).
import type { PatchingParams } from "../tasks.ts";
import { inputsList, showFigure } from "./figure-panel.ts";
import { runJob } from "./job-panel.ts";

interface PatchingResult {
  figure: Figure;
  summary: string;
  caption?: string;
  inputs?: { label: string; value: string | string[] }[];
}

export async function runPatching(out: HTMLElement, params: PatchingParams): Promise<void> {
  const { clean, corrupted, answer, wrong, target } = params;
  await runJob<PatchingResult>(out, {
    request: { kind: "patching", clean, corrupted, answer, wrong, target },
    running: (p) => `Patching: ${p.done} / ${p.total} runs`,
    async show(host, result) {
      await showFigure(host, result.figure, result.caption);
      if (result.inputs) host.prepend(inputsList(result.inputs));
      return result.summary;
    },
  });
}
