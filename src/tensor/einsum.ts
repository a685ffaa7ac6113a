/**
 * A small einsum over tensors and views: `einsum("bhqk,bhkd->bhqd", pattern, v)`. Letters name dims;
 * letters missing from the output are summed (float64 accumulation). The output must be given after
 * `->` (no implicit form, no `...`): an explicit spec is easier to read back. Loops over every index
 * combination, so it is for analysis-sized work, not for the model's hot paths (those use the kernels).
 */

import { Tensor } from "./tensor.ts";
import type { TensorView } from "./tensor-view.ts";

export function einsum(spec: string, ...operands: (Tensor | TensorView)[]): Tensor {
  const m = /^([a-z,]+)->([a-z]*)$/.exec(spec.replaceAll(" ", ""));
  if (!m)
    throw new Error(`einsum spec "${spec}" must look like "ij,jk->ik": lower-case letters, explicit output`);
  const inputs = m[1].split(",");
  const output = m[2];
  if (inputs.length !== operands.length)
    throw new Error(`einsum "${spec}" names ${inputs.length} operands, got ${operands.length}`);
  const views = operands.map((t) => (t instanceof Tensor ? t.view() : t));
  const size = new Map<string, number>();
  inputs.forEach((letters, k) => {
    const shape = views[k].shape;
    if (letters.length !== shape.length)
      throw new Error(
        `einsum "${spec}": operand ${k} has ${shape.length} dims [${shape.join(", ")}], "${letters}" names ${letters.length}`,
      );
    [...letters].forEach((c, a) => {
      const known = size.get(c);
      if (known !== undefined && known !== shape[a])
        throw new Error(`einsum "${spec}": dim "${c}" is ${known} in one place and ${shape[a]} in another`);
      size.set(c, shape[a]);
    });
  });
  for (const c of output) {
    if (!size.has(c)) throw new Error(`einsum "${spec}": output dim "${c}" is in no operand`);
    if (output.indexOf(c) !== output.lastIndexOf(c))
      throw new Error(`einsum "${spec}": output repeats "${c}"`);
  }
  const summed = [...size.keys()].filter((c) => !output.includes(c));
  const loop = [...output, ...summed]; // output letters outermost, so each output element is one run
  const extent = loop.map((c) => size.get(c) as number);
  // Per operand, its storage step for each loop letter (a letter repeated in one operand, "ii", steps on both).
  const steps = views.map((v, k) =>
    loop.map((c) => [...inputs[k]].reduce((s, x, a) => (x === c ? s + v.strides[a] : s), 0)),
  );
  const outShape = [...output].map((c) => size.get(c) as number);
  const nOut = outShape.reduce((a, b) => a * b, 1);
  const nSum = summed.reduce((a, c) => a * (size.get(c) as number), 1);
  const out = new Float64Array(nOut);
  if (nOut > 0 && nSum > 0) {
    const idx = new Array<number>(loop.length).fill(0);
    const off = views.map((v) => v.offset);
    for (let n = 0; n < nOut * nSum; n++) {
      let p = 1;
      for (let k = 0; k < views.length; k++) p *= views[k].storage[off[k]];
      out[Math.floor(n / nSum)] += p;
      for (let a = loop.length - 1; a >= 0; a--) {
        idx[a]++;
        for (let k = 0; k < views.length; k++) off[k] += steps[k][a];
        if (idx[a] < extent[a]) break;
        for (let k = 0; k < views.length; k++) off[k] -= idx[a] * steps[k][a];
        idx[a] = 0;
      }
    }
  }
  return new Tensor(Float32Array.from(out), outShape);
}
