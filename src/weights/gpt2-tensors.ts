/** The Hugging Face GPT-2 checkpoint layout: file names and the tensors a GPT-2 needs. */
import type { GPT2Config } from "./config.ts";

export const CONFIG_FILE = "config.json";
export const WEIGHTS_FILE = "model.safetensors";
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";
export const PYTORCH_FILES = ["pytorch_model.bin", "pytorch_model.bin.index.json"];

/** Every tensor a GPT-2 needs, with its shape for `config` (HF Conv1D weights are [in, out]). */
export function expectedGpt2Tensors(config: GPT2Config): Map<string, number[]> {
  const { dModel: D, dMlp, dVocab, nCtx } = config;
  const shapes = new Map<string, number[]>([
    ["wte.weight", [dVocab, D]],
    ["wpe.weight", [nCtx, D]],
  ]);
  for (let l = 0; l < config.nLayers; l++) {
    const h = `h.${l}`;
    shapes.set(`${h}.ln_1.weight`, [D]);
    shapes.set(`${h}.ln_1.bias`, [D]);
    shapes.set(`${h}.attn.c_attn.weight`, [D, 3 * D]);
    shapes.set(`${h}.attn.c_attn.bias`, [3 * D]);
    shapes.set(`${h}.attn.c_proj.weight`, [D, D]);
    shapes.set(`${h}.attn.c_proj.bias`, [D]);
    shapes.set(`${h}.ln_2.weight`, [D]);
    shapes.set(`${h}.ln_2.bias`, [D]);
    shapes.set(`${h}.mlp.c_fc.weight`, [D, dMlp]);
    shapes.set(`${h}.mlp.c_fc.bias`, [dMlp]);
    shapes.set(`${h}.mlp.c_proj.weight`, [dMlp, D]);
    shapes.set(`${h}.mlp.c_proj.bias`, [D]);
  }
  shapes.set("ln_f.weight", [D]);
  shapes.set("ln_f.bias", [D]);
  return shapes;
}
