import { readFileSync } from "node:fs";
import { join } from "node:path";
import { HookedTransformer, type LoadOptions } from "../../src/model/hooked-transformer.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { SafetensorsReader } from "../../src/weights/safetensors.ts";
import { FIXTURE_DIR } from "./fixture.ts";

/** The fixture's reference.json (prompts, tokens, answers, scalars, labels). */
export interface ReferenceJson {
  prompts: {
    clean: string[];
    corrupted: string[];
    answer: string;
    wrong: string;
    clean_tokens: number[][];
    corrupted_tokens: number[][];
    answer_token: number;
    wrong_token: number;
  };
  scalars: { clean_logit_diff: number; corrupted_logit_diff: number };
  labels: { accumulated_resid: string[]; decompose_resid: string[] };
}

export const referenceJson: ReferenceJson = JSON.parse(
  readFileSync(join(FIXTURE_DIR, "reference.json"), "utf8"),
);

let refTensors: Map<string, Tensor> | null = null;
/** Every tensor of reference.safetensors, read once per test process. */
export function referenceTensors(): Map<string, Tensor> {
  if (!refTensors) {
    const reader = SafetensorsReader.open(join(FIXTURE_DIR, "reference.safetensors"));
    refTensors = new Map();
    for (const [name, info] of reader.tensors)
      refTensors.set(name, new Tensor(reader.readFloat32(name), info.shape));
    reader.close();
  }
  return refTensors;
}

export function referenceTensor(name: string): Tensor {
  const t = referenceTensors().get(name);
  if (!t) throw new Error(`reference.safetensors has no tensor ${name}`);
  return t;
}

/** `circuitscope patch` on the fixture model with its clean/corrupted pairs and answer/wrong tokens. */
export function fixturePatchArgs(): string[] {
  const args = [
    "patch",
    "--model",
    FIXTURE_DIR,
    "--answer",
    referenceJson.prompts.answer,
    "--wrong",
    referenceJson.prompts.wrong,
  ];
  for (const [i, clean] of referenceJson.prompts.clean.entries()) {
    args.push("--clean", clean, "--corrupted", referenceJson.prompts.corrupted[i]);
  }
  return args;
}

export function loadFixtureModel(opts: LoadOptions = {}): HookedTransformer {
  return HookedTransformer.fromCheckpoint(loadCheckpoint(FIXTURE_DIR), opts);
}

/** Largest |a - b|, treating equal infinities as equal; throws on shape mismatch. */
export function maxAbsDiff(a: Tensor | Float32Array | number[], b: Tensor | Float32Array | number[]): number {
  const x = a instanceof Tensor ? a.data : a;
  const y = b instanceof Tensor ? b.data : b;
  if (a instanceof Tensor && b instanceof Tensor && a.shape.join() !== b.shape.join()) {
    throw new Error(`shape mismatch [${a.shape}] vs [${b.shape}]`);
  }
  if (x.length !== y.length) throw new Error(`length mismatch ${x.length} vs ${y.length}`);
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === y[i]) continue;
    const d = Math.abs(x[i] - y[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}
