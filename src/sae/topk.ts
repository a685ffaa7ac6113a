/**
 * The one TopK selection of an SAE row, shared by encoding (src/sae/sae.ts) and training
 * (src/sae-train/sae-loss.ts): the k largest of values[offset … offset + n), ties to the lower index.
 */

/**
 * Writes the columns of the `k` largest entries of row `values[offset … offset + n)` into `out`, in
 * descending order of value (ties: the lower column first); with `columns`, only those columns (given in
 * ascending order) are candidates. Returns how many were written (fewer than k only when fewer candidates).
 *
 * Two phases: the first k candidates are sorted in; after that each element costs one comparison with
 * `floor` (the smallest value kept, a local), and only a larger one is inserted (about k·ln(n/k) times).
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
  let c = 0;
  // Fill: the first k candidates, sorted in.
  for (; c < m && found < k; c++) {
    const j = columns ? columns[c] : c;
    const v = values[offset + j];
    let at = found++;
    while (at > 0 && values[offset + out[at - 1]] < v) {
      out[at] = out[at - 1];
      at--;
    }
    out[at] = j;
  }
  if (found < k) return found;
  let floor = values[offset + out[k - 1]];
  if (columns) {
    for (; c < m; c++) {
      const j = columns[c];
      const v = values[offset + j];
      if (v <= floor) continue;
      floor = insert(values, offset, k, out, j, v);
    }
  } else {
    for (; c < m; c++) {
      const v = values[offset + c];
      if (v <= floor) continue;
      floor = insert(values, offset, k, out, c, v);
    }
  }
  return found;
}

/** Puts column j (value v, above the floor) among the k held, dropping the last; returns the new floor. */
function insert(
  values: Float32Array | Float64Array,
  offset: number,
  k: number,
  out: Int32Array,
  j: number,
  v: number,
): number {
  let at = k - 1;
  while (at > 0 && values[offset + out[at - 1]] < v) {
    out[at] = out[at - 1];
    at--;
  }
  out[at] = j;
  return values[offset + out[k - 1]];
}
