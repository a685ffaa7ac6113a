/**
 * SAE figures at GPT-2-small width: encoding one 128-token prompt's hook_resid_pre with a 24,576-feature
 * TopK SAE (d_in 768), and the memory an SAE loaded from a SAELens directory holds against its float32
 * weights ("an SAE is held once": 1.0, not 2.0 with a second copy of W_enc beside the kernels').
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sae, SaeWeights } from "../src/sae/sae.ts";
import type { SaeConfig } from "../src/sae/sae-config.ts";
import { loadSaeLensDir, writeSaeLensDir } from "../src/sae/saelens-dir.ts";
import type { Kernels } from "../src/tensor/kernels.ts";
import { collectGarbage } from "../src/util/collect-garbage.ts";
import { mulberry32 } from "../src/util/random.ts";
import { medianMs } from "./gpt2-small.ts";

const D_IN = 768;
const D_SAE = 24_576;
const ROWS = 128;

function randomSae(): { cfg: SaeConfig; weights: SaeWeights } {
  const rng = mulberry32(5);
  const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rng() - 0.5) * scale);
  return {
    cfg: {
      architecture: "topk",
      dIn: D_IN,
      dSae: D_SAE,
      k: 32,
      dtype: "float32",
      applyBDecToInput: true,
      normalizeActivations: "none",
      reshapeActivations: "none",
      hookName: "blocks.6.hook_resid_pre",
      metadata: {},
    },
    weights: {
      W_enc: rand(D_IN * D_SAE, 0.1),
      W_dec: rand(D_SAE * D_IN, 0.1),
      b_enc: rand(D_SAE, 0.01),
      b_dec: rand(D_IN, 0.01),
    },
  };
}

export interface SaeFeaturesBench {
  sae_features_gpt2_small_ms: number;
  sae_held_bytes_ratio: number;
  sae_load_rss_ratio: number;
}

export async function benchSaeFeatures(
  kernels: Kernels,
  opts: { log: (line: string) => void },
): Promise<SaeFeaturesBench> {
  const { cfg, weights } = randomSae();
  const float32Bytes = (2 * D_IN * D_SAE + D_SAE + D_IN) * 4;
  const dir = mkdtempSync(join(tmpdir(), "circuitscope-bench-sae-"));
  try {
    await writeSaeLensDir(join(dir, "sae"), { cfg, weights });
    const x = Float32Array.from({ length: ROWS * D_IN }, (_, i) => Math.sin(i * 0.37) * 2);
    // Loaded as a user would, with the garbage of building it gone first.
    weights.W_enc = new Float32Array(0);
    weights.W_dec = new Float32Array(0);
    collectGarbage();
    const before = process.memoryUsage().rss;
    const sae: Sae = loadSaeLensDir(join(dir, "sae"), { kernels });
    collectGarbage();
    const held = process.memoryUsage().rss - before;
    const ms = medianMs(() => sae.encode(x, ROWS), kernels.name === "reference" ? 2 : 15, 2);
    const figures = {
      sae_features_gpt2_small_ms: ms,
      sae_held_bytes_ratio: sae.heldBytes / float32Bytes,
      sae_load_rss_ratio: held / float32Bytes,
    };
    opts.log(
      `SAE d_in ${D_IN}, d_sae ${D_SAE} (topk 32): encode ${ROWS} tokens ${ms.toFixed(1)} ms; holds ` +
        `${figures.sae_held_bytes_ratio.toFixed(2)}x its float32 weights (RSS after loading ${figures.sae_load_rss_ratio.toFixed(2)}x)`,
    );
    sae.dispose();
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
