/** A random transcoder in circuit-tracer's layout, for the graph tests. */
import type { Transcoder } from "../../src/graphs/transcoder-set.ts";
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
