/**
 * The patching targets the explorer offers: those whose result is a 2-D [layer, pos] or [layer, head]
 * grid, i.e. one heatmap. (head_all is 3-D, and every layer's neurons are too many columns for one heatmap: use the CLI for those.)
 */
import { HEAD_COMPONENTS, type PatchTarget, RESID_TARGETS, targetFromName } from "../patching/targets.ts";

export const EXPLORER_TARGETS: readonly string[] = [
  ...RESID_TARGETS,
  ...HEAD_COMPONENTS.map((c) => `head_${c}`),
];

/** `resid_pre` → { kind: "resid_pre" }, `head_z` → { kind: "head", component: "z" }; null if not offered. */
export function explorerTarget(name: string): PatchTarget | null {
  return EXPLORER_TARGETS.includes(name) ? targetFromName(name) : null;
}
