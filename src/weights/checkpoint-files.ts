/** File names of a Hugging Face checkpoint directory. */
export const CONFIG_FILE = "config.json";
export const WEIGHTS_FILE = "model.safetensors";
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";
export const PYTORCH_FILES = ["pytorch_model.bin", "pytorch_model.bin.index.json"];
export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";
/** Fetched with the weights when the repo has them. */
export const TOKENIZER_FILES = [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE];
