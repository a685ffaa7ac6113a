/** Sparse autoencoders: the SAELens format, SAEs inside the model, features as a unit. */

export {
  type FeatureEdits,
  featureEditHook,
  SAE_HOOK_NAMES,
  type SaeHookName,
  type SaeSpliceOptions,
  saeHookName,
  saeSplice,
} from "./attach.ts";
export {
  BUNDLED_INDEX_FOLDER,
  bundledFeatureIndexDir,
  bundledSaeDir,
  bundledSaeIds,
} from "./bundled-saes.ts";
export { DEFAULT_EVAL_CONTEXT, evaluateSae, promptFeatures, type SaeEvalResult } from "./evaluate.ts";
export { checkSaeFitsModel, saeHookWidth } from "./hook-width.ts";
export { resolveSaeDir } from "./resolve-sae.ts";
export { Sae, type SaeCodes, type SaeTensorName, type SaeWeights, saeTensorShapes } from "./sae.ts";
export {
  parseSaeConfig,
  SAE_ARCHITECTURES,
  SAE_NORMALIZATIONS,
  type SaeArchitecture,
  type SaeConfig,
  type SaeNormalization,
  saeConfigToJson,
} from "./sae-config.ts";
export {
  loadSaeLensDir,
  readSaeConfig,
  SAE_CFG_FILE,
  SAE_SCALER_FILE,
  SAE_SPARSITY_FILE,
  SAE_WEIGHTS_FILE,
  type SaeLensDirContents,
  writeSaeLensDir,
} from "./saelens-dir.ts";
