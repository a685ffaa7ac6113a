/** A random transcoder in circuit-tracer's layout, for the graph tests. */
import type { Transcoder, TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { mulberry32 } from "../../src/util/random.ts";

export function randomTranscoder(
  seed: number,
  layer: number,
  dModel: number,
  dTc: number,
  jump: boolean,
  skip: boolean,
): Transcoder {
  const rng = mulberry32(seed);
  const r = (n: number) => Float32Array.from({ length: n }, () => rng() * 2 - 1);
  return {
    layer,
    dModel,
    dTranscoder: dTc,
    wEnc: r(dTc * dModel),
    wDec: r(dTc * dModel),
    bEnc: r(dTc),
    bDec: r(dModel),
    threshold: jump ? Float32Array.from({ length: dTc }, () => rng() * 0.5) : null,
    wSkip: skip ? r(dModel * dModel) : null,
  };
}

/**
 * A set of random transcoders reading ln2.hook_normalized and replacing hook_mlp_out, one per layer; layer l
 * is JumpReLU where `jump(l)` and has a skip connection where `skip(l)`.
 */
export function randomTranscoderSet(a: {
  layers: number;
  dModel: number;
  dTc: number;
  seed: number;
  jump: (layer: number) => boolean;
  skip: (layer: number) => boolean;
  modelName?: string;
}): TranscoderSet {
  return {
    featureInputHook: "ln2.hook_normalized",
    featureOutputHook: "hook_mlp_out",
    modelName: a.modelName ?? null,
    ids: Array.from({ length: a.layers }, (_, l) => `layer_${l}`),
    transcoders: Array.from({ length: a.layers }, (_, l) =>
      randomTranscoder(a.seed + l, l, a.dModel, a.dTc, a.jump(l), a.skip(l)),
    ),
  };
}

/**
 * A random cross-layer transcoder reading ln2.hook_normalized: layer l's W_dec is [d_tc, layers − l, d_model]
 * (its features write into every layer from l up); JumpReLU on every layer when `jump`.
 */
export function randomCrossLayerTranscoder(a: {
  layers: number;
  dModel: number;
  dTc: number;
  seed: number;
  jump: boolean;
  modelName?: string;
}): TranscoderSet {
  const set = randomTranscoderSet({ ...a, jump: () => a.jump, skip: () => false });
  const rng = mulberry32(a.seed + 1000);
  set.transcoders.forEach((tc, l) => {
    tc.wDec = Float32Array.from({ length: a.dTc * (a.layers - l) * a.dModel }, () => rng() * 2 - 1);
  });
  return { ...set, ids: set.ids.map((_, l) => `clt_layer_${l}`), crossLayer: true };
}
