/**
 * Turning a model name into a local checkpoint directory: a local path as is, else a Hugging Face
 * hub repo from the shared cache, downloading config.json + safetensors weights when missing.
 */
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { createProgress } from "../util/progress.ts";
import { bundledModelDir } from "../weights/bundled-models.ts";
import {
  CONFIG_FILE,
  PYTORCH_FILES,
  TOKENIZER_FILES,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from "../weights/checkpoint-files.ts";
import {
  blobIsComplete,
  cachedCommit,
  findCachedModel,
  linkSnapshotFile,
  repoStorageDir,
  shardFilesOfIndex,
  writeRef,
} from "./cache.ts";
import { downloadBlob } from "./download-blob.ts";
import { type FileMetadata, fetchFileMetadata, HubHttpError, HubUnreachableError } from "./hub-http.ts";
import { type HubOptions, type HubSettings, hubSettings, isRepoId } from "./settings.ts";

export type { HubOptions } from "./settings.ts";
/** Options of resolveModel / downloadModel (the same as HubOptions). */
export type ResolveOptions = HubOptions;

/** Looks like a filesystem path rather than a repo id. */
function looksLikePath(name: string): boolean {
  return (
    /^(\.{1,2}|~)?[/\\]/.test(name) ||
    name.startsWith(".") ||
    name.split("/").length > 2 ||
    name.includes("\\")
  );
}

function localDirectory(name: string): string | undefined {
  if (!existsSync(name) || !statSync(name).isDirectory()) return undefined;
  const dir = resolve(name);
  if (!existsSync(join(dir, CONFIG_FILE))) {
    throw new Error(
      `Model directory ${dir} has no config.json — a local model needs config.json + model.safetensors ` +
        "(Hugging Face layout); or pass a hub name such as gpt2",
    );
  }
  return dir;
}

function notCachedError(repoId: string, settings: HubSettings, why: string): Error {
  return new Error(
    `Model "${repoId}" is not in the Hugging Face cache at ${repoStorageDir(settings.cacheDir, repoId)} and ` +
      `cannot be downloaded: ${why}. To fix: run \`circuitscope download ${repoId}\` on a machine with internet ` +
      `and copy its cache (${settings.cacheDir}) here, or copy a cache filled by Python tools ` +
      "(~/.cache/huggingface/hub; or set HF_HUB_CACHE to it), or pass a local checkpoint directory with --model DIR",
  );
}

/** Validates the name and returns it as a repo id, or a local directory (a bundled model's, by name). */
function classify(nameOrPath: string): { dir: string } | { repoId: string } {
  const bundled = bundledModelDir(nameOrPath);
  if (bundled) return { dir: bundled };
  const dir = localDirectory(nameOrPath);
  if (dir) return { dir };
  if (looksLikePath(nameOrPath) || !isRepoId(nameOrPath)) {
    throw new Error(
      `Model "${nameOrPath}" is neither an existing directory nor a hub model id — pass a directory holding ` +
        "config.json + model.safetensors, or a name like gpt2, stories260k (bundled), distilgpt2 or owner/name",
    );
  }
  return { repoId: nameOrPath };
}

/**
 * Returns a local directory holding config.json + safetensors weights for `nameOrPath`:
 * the directory itself if it exists, else the cached hub snapshot (no network when cached),
 * else a fresh download into the cache (unless offline).
 */
export async function resolveModel(nameOrPath: string, opts: HubOptions = {}): Promise<string> {
  const target = classify(nameOrPath);
  if ("dir" in target) return target.dir;
  const settings = hubSettings(opts);
  const cached = findCachedModel(settings.cacheDir, target.repoId, settings.revision);
  if (cached) return cached;
  return downloadSnapshot(target.repoId, settings);
}

/**
 * For `circuitscope download MODEL`: always asks the hub for the revision's current commit and
 * fetches whatever the cache lacks. Offline, it returns the cached snapshot (or the offline error).
 */
export async function downloadModel(nameOrPath: string, opts: HubOptions = {}): Promise<string> {
  const target = classify(nameOrPath);
  if ("dir" in target) return target.dir;
  const settings = hubSettings(opts);
  if (settings.offline) {
    const cached = findCachedModel(settings.cacheDir, target.repoId, settings.revision);
    if (cached) return cached;
  }
  return downloadSnapshot(target.repoId, settings);
}

async function downloadSnapshot(repoId: string, settings: HubSettings): Promise<string> {
  if (settings.offline) {
    throw notCachedError(repoId, settings, "offline mode is on (HF_HUB_OFFLINE or --offline)");
  }
  try {
    return await fetchSnapshot(repoId, settings);
  } catch (err) {
    if (err instanceof HubUnreachableError) throw notCachedError(repoId, settings, err.message);
    throw err;
  }
}

/** Metadata for a file, or undefined when the repo simply does not have it. */
async function optionalMetadata(
  settings: HubSettings,
  repoId: string,
  revision: string,
  filename: string,
): Promise<FileMetadata | undefined> {
  try {
    return await fetchFileMetadata(settings, repoId, revision, filename);
  } catch (err) {
    // After config.json was found, a 404 means this file is absent (unless the hub says otherwise).
    const repoGone = err instanceof HubHttpError && /^(RepoNotFound|RevisionNotFound)$/.test(err.code ?? "");
    if (err instanceof HubHttpError && err.status === 404 && !repoGone) return undefined;
    throw err;
  }
}

async function fetchSnapshot(repoId: string, settings: HubSettings): Promise<string> {
  const storage = repoStorageDir(settings.cacheDir, repoId);
  const config = await fetchFileMetadata(settings, repoId, settings.revision, CONFIG_FILE);
  // Pin every later file to the commit config.json came from, so a push mid-download cannot mix versions.
  const commit = config.commit;
  const files: [string, FileMetadata][] = [[CONFIG_FILE, config]];
  const single = await optionalMetadata(settings, repoId, commit, WEIGHTS_FILE);
  if (single) {
    files.push([WEIGHTS_FILE, single]);
  } else {
    const index = await optionalMetadata(settings, repoId, commit, WEIGHTS_INDEX_FILE);
    if (!index) throw await noSafetensorsError(settings, repoId, commit);
    files.push([WEIGHTS_INDEX_FILE, index]);
    // The index names the shards, so it is fetched first (into blobs/, not yet linked).
    const indexBlob = await storeBlob(settings, repoId, storage, WEIGHTS_INDEX_FILE, index);
    const shards = shardFilesOfIndex(indexBlob);
    if (!shards || shards.some((f) => f.includes(".."))) {
      throw new Error(`${WEIGHTS_INDEX_FILE} of "${repoId}" has no valid weight_map — the repo looks broken`);
    }
    for (const shard of shards) files.push([shard, await fetchFileMetadata(settings, repoId, commit, shard)]);
  }
  // The tokenizer comes with the weights (a repo without one is GPT-2-style: its BPE ships with circuitscope).
  for (const file of TOKENIZER_FILES) {
    const meta = await optionalMetadata(settings, repoId, commit, file);
    if (meta) files.push([file, meta]);
  }
  const blobs: string[] = [];
  for (const [filename, meta] of files)
    blobs.push(await storeBlob(settings, repoId, storage, filename, meta));
  // Link only once every blob is complete and verified: a snapshot never shows a partial model.
  for (const [i, [filename]] of files.entries()) linkSnapshotFile(storage, commit, filename, blobs[i]);
  writeRef(storage, settings.revision, commit);
  return join(storage, "snapshots", commit);
}

async function noSafetensorsError(settings: HubSettings, repoId: string, commit: string): Promise<Error> {
  for (const file of PYTORCH_FILES) {
    if (await optionalMetadata(settings, repoId, commit, file)) {
      return new Error(
        `"${repoId}" has only ${file} (PyTorch pickle), which circuitscope does not load (it can run arbitrary ` +
          "code and needs PyTorch) — convert it once with Python: `from transformers import AutoModelForCausalLM; " +
          `AutoModelForCausalLM.from_pretrained("${repoId}").save_pretrained(OUT, safe_serialization=True)\` ` +
          "and pass --model OUT, or look for a safetensors revision (--revision refs/pr/N)",
      );
    }
  }
  return new Error(
    `"${repoId}" has neither ${WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE} — is it a model repo of a supported family (GPT-2, Llama, Mistral, Qwen2)?`,
  );
}

/** Ensures blobs/<etag> is complete (downloading it if needed) and returns its path. */
async function storeBlob(
  settings: HubSettings,
  repoId: string,
  storage: string,
  filename: string,
  meta: FileMetadata,
): Promise<string> {
  const blobPath = join(storage, "blobs", meta.etag);
  if (!blobIsComplete(blobPath, meta.size)) {
    const totalMb = meta.size === undefined ? 0 : Math.ceil(meta.size / 1e6);
    const bar = createProgress({ label: filename, total: totalMb, unit: "MB", quiet: !settings.progress });
    let shownMb = 0;
    try {
      await downloadBlob(settings, {
        repoId,
        filename,
        url: meta.url,
        blobPath,
        etag: meta.etag,
        expectedSize: meta.size,
        onProgress: (done) => {
          const mb = Math.floor(done / 1e6);
          if (mb > shownMb) bar.tick(mb - shownMb);
          shownMb = mb;
        },
      });
    } finally {
      bar.stop();
    }
  }
  return blobPath;
}

/**
 * Files of one folder of a hub repository (an SAELens release keeps each SAE in a folder of one repo):
 * the cached snapshot when it holds every `required` file (no network), else the files fetched into the
 * cache, each pinned to the commit the first one came from. `optional` files are fetched when the repo
 * has them. Returns the snapshot's folder.
 */
export async function resolveRepoFolder(
  repoId: string,
  folder: string,
  files: { required: readonly string[]; optional?: readonly string[] },
  opts: HubOptions = {},
): Promise<string> {
  if (folder.split("/").includes(".."))
    throw new Error(`Folder "${folder}" of ${repoId} may not contain ".."`);
  const settings = hubSettings(opts);
  const path = (f: string) => (folder ? `${folder}/${f}` : f);
  const storage = repoStorageDir(settings.cacheDir, repoId);
  const commit = cachedCommit(storage, settings.revision);
  if (commit) {
    const dir = join(storage, "snapshots", commit, folder);
    if (files.required.every((f) => existsSync(join(dir, f)))) return dir;
  }
  if (settings.offline) {
    throw notCachedError(repoId, settings, "offline mode is on (HF_HUB_OFFLINE or --offline)");
  }
  try {
    const [first, ...rest] = files.required;
    const firstMeta = await fetchFileMetadata(settings, repoId, settings.revision, path(first));
    const pinned = firstMeta.commit;
    const wanted: [string, FileMetadata][] = [[path(first), firstMeta]];
    for (const f of rest) wanted.push([path(f), await fetchFileMetadata(settings, repoId, pinned, path(f))]);
    for (const f of files.optional ?? []) {
      const meta = await optionalMetadata(settings, repoId, pinned, path(f));
      if (meta) wanted.push([path(f), meta]);
    }
    const blobs: string[] = [];
    for (const [filename, meta] of wanted)
      blobs.push(await storeBlob(settings, repoId, storage, filename, meta));
    for (const [i, [filename]] of wanted.entries()) linkSnapshotFile(storage, pinned, filename, blobs[i]);
    writeRef(storage, settings.revision, pinned);
    return join(storage, "snapshots", pinned, folder);
  } catch (err) {
    if (err instanceof HubUnreachableError) throw notCachedError(repoId, settings, err.message);
    throw err;
  }
}
