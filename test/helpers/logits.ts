/** Largest |processed - (raw - mean over the vocabulary)| over all rows of [..., d_vocab] logits. */
export function maxDiffFromCentred(raw: Float32Array, processed: Float32Array, V: number): number {
  let worst = 0;
  for (let o = 0; o < raw.length; o += V) {
    let mean = 0;
    for (let t = 0; t < V; t++) mean += raw[o + t];
    mean /= V;
    for (let t = 0; t < V; t++) worst = Math.max(worst, Math.abs(processed[o + t] - (raw[o + t] - mean)));
  }
  return worst;
}
