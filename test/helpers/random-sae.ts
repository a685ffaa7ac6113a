/** Random SAE weights of a given shape, for tests (deterministic for a seed). */
import type { SaeWeights } from "../../src/sae/sae.ts";
import type { SaeArchitecture, SaeConfig } from "../../src/sae/sae-config.ts";
import { mulberry32 } from "../../src/util/random.ts";

export function randomSaeWeights(opts: {
  architecture: SaeArchitecture;
  dIn: number;
  dSae: number;
  seed: number;
  /** Scale of W_enc's entries (choose it so that a good share of features fires on the data). */
  encScale?: number;
}): SaeWeights {
  const { dIn, dSae } = opts;
  const rng = mulberry32(opts.seed);
  const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale);
  const w: SaeWeights = {
    W_enc: rand(dIn * dSae, opts.encScale ?? 1),
    W_dec: rand(dSae * dIn, 1 / Math.sqrt(dIn)),
    b_dec: rand(dIn, 0.1),
  };
  if (opts.architecture === "gated") {
    w.b_gate = rand(dSae, 0.5);
    w.r_mag = rand(dSae, 0.3);
    w.b_mag = rand(dSae, 0.1);
  } else {
    w.b_enc = rand(dSae, 0.1);
  }
  if (opts.architecture === "jumprelu") w.threshold = Float32Array.from({ length: dSae }, () => rng() * 0.3);
  return w;
}

export function saeConfigFor(opts: {
  architecture: SaeArchitecture;
  dIn: number;
  dSae: number;
  hookName: string;
  k?: number;
}): SaeConfig {
  return {
    architecture: opts.architecture,
    dIn: opts.dIn,
    dSae: opts.dSae,
    ...(opts.architecture === "topk" ? { k: opts.k ?? 4 } : {}),
    dtype: "float32",
    applyBDecToInput: true,
    normalizeActivations: "none",
    reshapeActivations: opts.hookName.endsWith("attn.hook_z") ? "hook_z" : "none",
    hookName: opts.hookName,
    metadata: {},
  };
}
