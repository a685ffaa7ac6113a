import { basename, isAbsolute } from "node:path";

/** A model or directory as the user named it: a hub id or relative path as typed, an absolute path by its last part. */
export function displayName(pathOrId: string): string {
  return isAbsolute(pathOrId) ? basename(pathOrId) : pathOrId;
}
