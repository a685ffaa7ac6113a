/**
 * SAEs that ship inside the package, by a short id `--sae` takes wherever it takes a directory:
 * `stories260k/blocks.2.hook_resid_pre` is `models/stories260k-saes/blocks.2.hook_resid_pre`. A bundled SAE may
 * have a feature index beside it (`models/stories260k-saes/feature-index/blocks.2.hook_resid_pre`), which
 * `feature` and `serve` open when no index is given.
 */
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { BUNDLED_MODELS, MODELS_DIR } from "../weights/bundled-models.ts";
import { SAE_CFG_FILE } from "./saelens-dir.ts";

/** The folder of a bundled SAE set holding the feature indexes, one per SAE, named as the SAE's folder. */
export const BUNDLED_INDEX_FOLDER = "feature-index";

/** The directory of a bundled model's SAEs (`models/<model>-saes`). */
function saeSetDir(model: string): string {
  return join(MODELS_DIR, `${model}-saes`);
}

/** Every bundled SAE's short id (`model/folder`), sorted. */
export function bundledSaeIds(): string[] {
  const ids: string[] = [];
  for (const model of Object.keys(BUNDLED_MODELS)) {
    const dir = saeSetDir(model);
    if (!existsSync(dir)) continue;
    for (const folder of readdirSync(dir).sort())
      if (existsSync(join(dir, folder, SAE_CFG_FILE))) ids.push(`${model}/${folder}`);
  }
  return ids;
}

/**
 * The directory of the bundled SAE a short id names; undefined when `spec` does not start with a bundled
 * model's name and a slash (then it is a path or a hub id). A bundled model's name with an unknown folder is
 * an error listing the bundled SAEs: that spelling is never a hub id.
 */
export function bundledSaeDir(spec: string): string | undefined {
  const slash = spec.indexOf("/");
  if (slash < 0 || !Object.hasOwn(BUNDLED_MODELS, spec.slice(0, slash))) return undefined;
  const model = spec.slice(0, slash);
  const folder = spec.slice(slash + 1).replace(/\/+$/, "");
  const dir = join(saeSetDir(model), folder);
  if (
    folder &&
    !folder.includes("/") &&
    folder !== BUNDLED_INDEX_FOLDER &&
    existsSync(join(dir, SAE_CFG_FILE))
  )
    return dir;
  const ids = bundledSaeIds();
  throw new Error(
    `--sae ${spec}: no bundled SAE of that name. The bundled SAEs are ${ids.length ? ids.join(", ") : "(none)"}; ` +
      "or pass an SAELens directory, or a hub id owner/repo/FOLDER.",
  );
}

/** The feature index shipped for a bundled SAE's directory, or null (not bundled, or no index beside it). */
export function bundledFeatureIndexDir(saeDir: string): string | null {
  const abs = resolve(saeDir);
  for (const model of Object.keys(BUNDLED_MODELS)) {
    const set = saeSetDir(model);
    if (resolve(abs, "..") !== set) continue;
    const index = join(set, BUNDLED_INDEX_FOLDER, abs.slice(set.length + 1));
    // Its manifest is checked by the reader (src/neurons is a higher layer).
    return existsSync(index) ? index : null;
  }
  return null;
}
