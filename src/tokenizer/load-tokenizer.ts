import type { ModelConfig } from "../weights/config.ts";
import { familyOf } from "../weights/families/index.ts";
import { loadHfTokenizer } from "./hf-tokenizer.ts";
import { gpt2Tokenizer, type Tokenizer } from "./tokenizer.ts";

/**
 * The tokenizer of a checkpoint: its tokenizer.json (accepting the ids of a vocabulary the model pads past
 * it), or GPT-2's BPE (which ships with circuitscope) for GPT-2s.
 */
export function tokenizerFor(dir: string, config: ModelConfig): Tokenizer {
  return familyOf(config).needsTokenizerFile ? loadHfTokenizer(dir, config.dVocab) : gpt2Tokenizer();
}
