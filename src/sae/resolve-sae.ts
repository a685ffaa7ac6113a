/**
 * `--sae` names a bundled SAE by its short id (`stories260k/blocks.2.hook_resid_pre`: bundled-saes.ts), a local
 * SAELens directory, or a hub repository with the SAE's folder in it
 * (`owner/repo/blocks.8.hook_resid_pre`: SAELens releases keep each SAE in a folder of one repo), fetched
 * into the Hugging Face cache with the hub client.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { resolveRepoFolder } from "../hub/resolve.ts";
import type { HubOptions } from "../hub/settings.ts";
import { bundledSaeDir, bundledSaeIds } from "./bundled-saes.ts";
import { SAE_CFG_FILE, SAE_SCALER_FILE, SAE_SPARSITY_FILE, SAE_WEIGHTS_FILE } from "./saelens-dir.ts";

const HUB_SAE = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:\/(.+))?$/;

/** A local directory holding the SAE's files for `spec` (downloading a hub SAE when not cached). */
export async function resolveSaeDir(spec: string, opts: HubOptions = {}): Promise<string> {
  // As with --model: a bundled name comes first (its owner part, the model's name, is never a hub id here).
  const bundled = bundledSaeDir(spec);
  if (bundled) return bundled;
  if (existsSync(spec)) return resolve(spec);
  const m = HUB_SAE.exec(spec);
  if (!m || spec.startsWith(".") || spec.startsWith("/")) {
    throw new Error(
      `--sae ${spec} is neither an existing directory nor a hub id: pass an SAELens directory ` +
        `(${SAE_CFG_FILE} + ${SAE_WEIGHTS_FILE}), a bundled SAE (${bundledSaeIds()[0] ?? "none"}, ...) or owner/repo/FOLDER (e.g. jbloom/GPT2-Small-SAEs-Reformatted/blocks.8.hook_resid_pre)`,
    );
  }
  return resolveRepoFolder(
    `${m[1]}/${m[2]}`,
    m[3] ?? "",
    { required: [SAE_CFG_FILE, SAE_WEIGHTS_FILE], optional: [SAE_SPARSITY_FILE, SAE_SCALER_FILE] },
    opts,
  );
}
