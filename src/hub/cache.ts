/**
 * The huggingface_hub cache layout, shared with Python tools:
 *   <cacheDir>/models--{owner}--{name}/
 *     blobs/<etag>                     file contents, named by ETag (sha256 for LFS files)
 *     refs/<revision>                  the commit hash a branch/tag pointed to
 *     snapshots/<commit>/<filename>    relative symlink to ../../blobs/<etag>
 */
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { writeFileAtomic, writeFileAtomicWith } from "../util/atomic-write.ts";
import { CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE } from "../weights/checkpoint-files.ts";
import { isCommitHash, repoFolderName, repoIdAliases } from "./settings.ts";

export function repoStorageDir(cacheDir: string, repoId: string): string {
  return join(cacheDir, repoFolderName(repoId));
}

/** The commit a revision points to in the cache (a commit hash is its own), or undefined. */
export function cachedCommit(storage: string, revision: string): string | undefined {
  if (isCommitHash(revision)) return revision;
  const refPath = join(storage, "refs", revision);
  if (!existsSync(refPath)) return undefined;
  const commit = readFileSync(refPath, "utf8").trim();
  return commit === "" ? undefined : commit;
}

/** Shard file names listed by a safetensors index, or undefined when it cannot be read. */
export function shardFilesOfIndex(indexPath: string): string[] | undefined {
  try {
    const index = JSON.parse(readFileSync(indexPath, "utf8")) as { weight_map?: Record<string, string> };
    if (!index.weight_map || typeof index.weight_map !== "object") return undefined;
    return [...new Set(Object.values(index.weight_map))];
  } catch {
    return undefined;
  }
}

/** True if `dir` holds config.json and complete-looking weights (single file, or index + every shard). */
export function snapshotHasModel(dir: string): boolean {
  // existsSync follows symlinks, so a dangling snapshot link counts as missing.
  if (!existsSync(join(dir, CONFIG_FILE))) return false;
  if (existsSync(join(dir, WEIGHTS_FILE))) return true;
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (!existsSync(indexPath)) return false;
  const shards = shardFilesOfIndex(indexPath);
  return shards?.every((file) => existsSync(join(dir, file))) ?? false;
}

/** The cached snapshot directory for repo@revision holding a whole model, trying the repo's aliases. */
export function findCachedModel(cacheDir: string, repoId: string, revision: string): string | undefined {
  for (const id of repoIdAliases(repoId)) {
    const storage = repoStorageDir(cacheDir, id);
    const commit = cachedCommit(storage, revision);
    if (commit === undefined) continue;
    const snapshot = join(storage, "snapshots", commit);
    if (snapshotHasModel(snapshot)) return snapshot;
  }
  return undefined;
}

/**
 * Points snapshots/<commit>/<filename> at the blob: a relative symlink (as huggingface_hub makes),
 * or a copy where symlinks are not allowed. Made under a temporary name and renamed, so the
 * snapshot entry is either absent or complete.
 */
export function linkSnapshotFile(
  storage: string,
  commit: string,
  filename: string,
  blobPath: string,
): string {
  const pointer = join(storage, "snapshots", commit, filename);
  mkdirSync(dirname(pointer), { recursive: true });
  writeFileAtomicWith(pointer, (tmp) => {
    try {
      symlinkSync(relative(dirname(pointer), blobPath), tmp);
    } catch {
      copyFileSync(blobPath, tmp);
    }
  });
  return pointer;
}

/** Records that `revision` resolved to `commit` (refs/<revision>), as huggingface_hub does. */
export function writeRef(storage: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const refPath = join(storage, "refs", revision);
  mkdirSync(dirname(refPath), { recursive: true });
  writeFileAtomic(refPath, commit);
}

/** Whether a blob is already stored with the expected size. */
export function blobIsComplete(blobPath: string, expectedSize: number | undefined): boolean {
  try {
    const stat = lstatSync(blobPath);
    return stat.isFile() && (expectedSize === undefined || stat.size === expectedSize);
  } catch {
    return false;
  }
}
