/** The patch sites the study's stages name: whole layer outputs, head parts, neurons. */
import { blockHookName } from "../model/hook-points.ts";
import { HEAD_COMPONENTS, type PatchSite, queryHeadPartSite } from "../patching/targets.ts";

/** A layer component screened per group: the attn or MLP output of one layer, patched at every position. */
export interface LayerComponent {
  label: string;
  site: PatchSite;
  /** 0 = attn, 1 = mlp (rows of the screen grid); col = layer. */
  row: number;
  col: number;
}

/** Every position of a [pos, d_model] activation: the whole hook patched at once. */
export const wholeHook = (hook: string): PatchSite => ({ hook, selectors: [[null, null]] });

export function layerComponents(nLayers: number): LayerComponent[] {
  const out: LayerComponent[] = [];
  for (let l = 0; l < nLayers; l++) {
    for (const [row, name, hook] of [
      [0, "attn", "hook_attn_out"],
      [1, "mlp", "hook_mlp_out"],
    ] as const) {
      out.push({ label: `L${l} ${name}`, site: wholeHook(blockHookName(l, hook)), row, col: l });
    }
  }
  return out;
}

/** Head parts in the order of the shared `head_all` target (z, q, k, v, pattern), with the report's names. */
export const HEAD_PARTS = ["output", "query", "key", "value", "pattern"] as const;

/** Every head's five parts in the order of the shared `head_all` target: [component][layer][head]. */
export function allHeadPartSites(cfg: { nLayers: number; nHeads: number; nKvHeads: number }): PatchSite[] {
  return HEAD_COMPONENTS.flatMap((component) =>
    Array.from({ length: cfg.nLayers }, (_, layer) =>
      Array.from({ length: cfg.nHeads }, (_, head) => queryHeadPartSite(cfg, { layer, head, component })),
    ).flat(),
  );
}
