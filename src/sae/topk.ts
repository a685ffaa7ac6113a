/**
 * The one TopK selection of an SAE row, shared by encoding (src/sae/sae.ts) and training
 * (src/sae-train/sae-loss.ts): the k largest of values[offset … offset + n), ties to the lower index.
 */

/**
 * Writes the columns of the `k` largest entries of row `values[offset … offset + n)` into `out`, in
 * descending order of value (ties: the lower column first); with `columns`, only those columns (given in
 * ascending order) are candidates. Returns how many were written (fewer than k only when fewer candidates).
 *
 * One comparison per element once k are held: `floor`, the smallest value kept, is a local, so the common
 * case (an element below it) costs no indexed read.
 */
export function rowTopK(
  values: Float32Array | Float64Array,
  offset: number,
  n: number,
  k: number,
  out: Int32Array,
  columns?: Int32Array,
): number {
  const m = columns ? columns.length : n;
  let found = 0;
  let floor = Number.NEGATIVE_INFINITY;
  for (let c = 0; c < m; c++) {
    const j = columns ? columns[c] : c;
    const v = values[offset + j];
    if (found === k && v <= floor) continue;
    let at = found < k ? found++ : k - 1;
    while (at > 0 && values[offset + out[at - 1]] < v) {
      out[at] = out[at - 1];
      at--;
    }
    out[at] = j;
    if (found === k) floor = values[offset + out[k - 1]];
  }
  return found;
}
