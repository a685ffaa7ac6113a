/** Models that ship inside the package (models/ at the package root), by the name `--model` takes. */
import { fileURLToPath } from "node:url";

/** models/ at the package root (bundled models, and the SAEs trained on them: src/sae/bundled-saes.ts). */
export const MODELS_DIR = fileURLToPath(new URL("../../models/", import.meta.url));

/**
 * stories260k: karpathy's TinyStories Llama (5 layers, d_model 64, 8 query / 4 key-value heads), converted
 * from llama2.c to the Hugging Face layout (models/stories260k/README.md says where it comes from).
 */
export const BUNDLED_MODELS: Readonly<Record<string, string>> = {
  stories260k: `${MODELS_DIR}stories260k`,
};

/** The bundled model's directory for a name such as `stories260k`, else undefined. */
export function bundledModelDir(name: string): string | undefined {
  return Object.hasOwn(BUNDLED_MODELS, name) ? BUNDLED_MODELS[name] : undefined;
}
