/**
 * The patching targets the explorer offers: those whose result is a 2-D [layer, pos] or [layer, head]
 * grid, i.e. one heatmap. (head_all is 3-D and neurons needs a layer: use the CLI for those.)
 */
import {
  HEAD_COMPONENTS,
  type HeadComponent,
  type PatchTarget,
  RESID_TARGETS,
  type ResidTarget,
} from "../patching/targets.ts";

export const EXPLORER_TARGETS: readonly string[] = [
  ...RESID_TARGETS,
  ...HEAD_COMPONENTS.map((c) => `head_${c}`),
];

/** `resid_pre` → { kind: "resid_pre" }, `head_z` → { kind: "head", component: "z" }; null if not offered. */
export function explorerTarget(name: string): PatchTarget | null {
  if ((RESID_TARGETS as readonly string[]).includes(name)) return { kind: name as ResidTarget };
  const m = /^head_(\w+)$/.exec(name);
  if (m && (HEAD_COMPONENTS as readonly string[]).includes(m[1]))
    return { kind: "head", component: m[1] as HeadComponent };
  return null;
}
