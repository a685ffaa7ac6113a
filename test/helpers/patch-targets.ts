import type { PatchTarget } from "../../src/patching/targets.ts";

/** The residual targets and each head component over all positions, named as the CLI names them. */
export const LAYER_AND_HEAD_TARGETS: [string, PatchTarget][] = [
  ["resid_pre", { kind: "resid_pre" }],
  ["resid_mid", { kind: "resid_mid" }],
  ["attn_out", { kind: "attn_out" }],
  ["mlp_out", { kind: "mlp_out" }],
  ...(["z", "q", "k", "v", "pattern"] as const).map((c): [string, PatchTarget] => [
    `head_${c}`,
    { kind: "head", component: c },
  ]),
];
