import type { Tensor } from "../tensor/tensor.ts";

/**
 * Which positions an analysis reads (TransformerLens' `pos_slice`, adapted to padded batches):
 * - `"final"` (default): each prompt's own final real position, `lengths[b] - 1`;
 * - `"all"`: every position of the padded batch (padding included);
 * - an integer p: position p of every prompt; negative counts back from each prompt's own end
 *   (-1 = final real position).
 */
export type PositionSpec = "final" | "all" | number;

/** The chosen positions: `positions[b * nPos + i]` is the absolute position of row i of prompt b. */
export interface PositionSelection {
  batch: number;
  nPos: number;
  positions: Int32Array; // [batch, nPos]
}

export function selectPositions(
  lengths: readonly number[],
  paddedPos: number,
  spec: PositionSpec = "final",
): PositionSelection {
  const batch = lengths.length;
  if (spec === "all") {
    const positions = new Int32Array(batch * paddedPos);
    for (let b = 0; b < batch; b++) for (let p = 0; p < paddedPos; p++) positions[b * paddedPos + p] = p;
    return { batch, nPos: paddedPos, positions };
  }
  const positions = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    const p = spec === "final" ? lengths[b] - 1 : spec < 0 ? lengths[b] + spec : spec;
    if (!Number.isInteger(p) || p < 0 || p >= lengths[b]) {
      throw new Error(
        `Position ${String(spec)} is outside prompt ${b} (real length ${lengths[b]}): use a position in 0..${lengths[b] - 1}, a negative offset from the end, "final" or "all".`,
      );
    }
    positions[b] = p;
  }
  return { batch, nPos: 1, positions };
}

/**
 * Rows of a [batch, pos, ...inner] activation at the selected positions → Float32Array [batch, nPos, inner].
 * `inner` is the product of the trailing dimensions.
 */
export function gatherPositions(act: Tensor, sel: PositionSelection): Float32Array {
  const [B, P] = act.shape;
  if (B !== sel.batch) throw new Error(`Activation has batch ${B} but the selection has ${sel.batch}`);
  const inner = act.data.length / (B * P);
  const out = new Float32Array(sel.batch * sel.nPos * inner);
  for (let b = 0; b < sel.batch; b++)
    for (let i = 0; i < sel.nPos; i++) {
      const p = sel.positions[b * sel.nPos + i];
      const src = (b * P + p) * inner;
      out.set(act.data.subarray(src, src + inner), (b * sel.nPos + i) * inner);
    }
  return out;
}
