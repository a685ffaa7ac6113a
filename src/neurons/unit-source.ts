/**
 * What an index indexes: "units" that yield one activation per token — MLP neurons of some layers, the
 * features of a sparse autoencoder at its hook, or the features of a transcoder set (one block per layer). A source turns a batch of token lists into blocks
 * [batch·pos, width] (right-padded rows; the indexer reads only the real ones), and the index numbers
 * unit j of block b as offsets[b] + j. Building, checkpointing and merging are the same for both.
 */
import { encodeTranscoder, type TranscoderSet } from "../graphs/transcoder-set.ts";
import { parseHookName } from "../model/hook-points.ts";
import type { Sae } from "../sae/sae.ts";
import { type MlpModel, runMlpPost } from "./mlp-activations.ts";

export interface UnitBlocks {
  /** Per block, activations [batch·pos, width]. */
  blocksRW: Float32Array[];
  pos: number;
}

export interface UnitSource {
  /** Units per block (an MLP layer's d_mlp, or the SAE's d_sae). */
  widths: readonly number[];
  run(tokens: readonly (readonly number[])[]): UnitBlocks;
}

/** MLP neurons (`blocks.{l}.mlp.hook_post`) of the given layers, one block per layer. */
export function mlpUnitSource(model: MlpModel, layers: readonly number[]): UnitSource {
  return {
    widths: layers.map(() => model.cfg.dMlp),
    run: (tokens) => {
      const { actsBPM, pos } = runMlpPost(model, tokens, layers);
      return { blocksRW: actsBPM, pos };
    },
  };
}

/** The SAE's feature activations (post non-linearity) at its hook, one block of d_sae. */
export function saeUnitSource(model: MlpModel, sae: Pick<Sae, "cfg" | "encode">): UnitSource {
  const hook = sae.cfg.hookName;
  const { layer } = parseHookName(hook);
  return {
    widths: [sae.cfg.dSae],
    run: (tokens) => {
      const { cache } = model.runWithCache(tokens, {
        namesFilter: (name: string) => name === hook,
        logits: "none",
        // Nothing after the hook's block is needed.
        stopAtLayer: layer !== null && layer + 1 < model.cfg.nLayers ? layer + 1 : undefined,
      });
      const x = cache.get(hook);
      const pos = x.shape[1];
      return { blocksRW: [sae.encode(x.data, tokens.length * pos).post], pos };
    },
  };
}

/**
 * A transcoder set's feature activations, one block of d_transcoder per layer: layer L's transcoder on
 * `blocks.L.{feature_input_hook}` (all positions, BOS included, as an SAE index; the graph zeroes BOS).
 */
export function transcoderUnitSource(model: MlpModel, set: TranscoderSet): UnitSource {
  const hooks = set.transcoders.map((tc) => `blocks.${tc.layer}.${set.featureInputHook}`);
  const last = Math.max(...set.transcoders.map((tc) => tc.layer));
  return {
    widths: set.transcoders.map((tc) => tc.dTranscoder),
    run: (tokens) => {
      const names = new Set(hooks);
      const { cache } = model.runWithCache(tokens, {
        namesFilter: (name: string) => names.has(name),
        logits: "none",
        stopAtLayer: last + 1 < model.cfg.nLayers ? last + 1 : undefined,
      });
      let pos = 0;
      const blocksRW = set.transcoders.map((tc, i) => {
        const x = cache.get(hooks[i]);
        pos = x.shape[1];
        const rows = tokens.length * pos;
        const D = tc.dModel;
        const out = new Float32Array(rows * tc.dTranscoder);
        for (let r = 0; r < rows; r++)
          out.set(encodeTranscoder(tc, x.data.subarray(r * D, (r + 1) * D)), r * tc.dTranscoder);
        return out;
      });
      return { blocksRW, pos };
    },
  };
}
