/**
 * Talking to the hub's file endpoint: `{endpoint}/{repo}/resolve/{revision}/{filename}`.
 * A HEAD there answers with X-Repo-Commit, ETag / X-Linked-Etag (sha256 of LFS content) and
 * X-Linked-Size / Content-Length; LFS files redirect to a CDN, so we read the metadata from the
 * first response that is not a same-host redirect (as huggingface_hub does).
 */
import type { HubSettings } from "./settings.ts";

export interface FileMetadata {
  /** The commit the revision resolved to. */
  commit: string;
  /** ETag without quotes: the blob name in the cache; a 64-hex sha256 for LFS files. */
  etag: string;
  /** Size in bytes, when the hub said it. */
  size: number | undefined;
  /** URL to GET (the GET follows the same redirects). */
  url: string;
}

/** The hub answered with an HTTP error. `code` is its X-Error-Code header (e.g. EntryNotFound). */
export class HubHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** The hub could not be reached at all (DNS, refused, reset, offline machine). */
export class HubUnreachableError extends Error {}

export function fileUrl(endpoint: string, repoId: string, revision: string, filename: string): string {
  const rev = encodeURIComponent(revision);
  const path = filename.split("/").map(encodeURIComponent).join("/");
  return `${endpoint}/${repoId}/resolve/${rev}/${path}`;
}

export function authHeaders(settings: HubSettings): Record<string, string> {
  return settings.token ? { authorization: `Bearer ${settings.token}` } : {};
}

function stripEtag(etag: string): string {
  return etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

export function describeHttpError(
  status: number,
  code: string | undefined,
  repoId: string,
  what: string,
  settings: HubSettings,
): string {
  if (status === 401 || code === "RepoNotFound" || code === "RepositoryNotFound") {
    return (
      `Model repo "${repoId}" was not found on ${settings.endpoint} (HTTP ${status}) — check the name ` +
      `(e.g. gpt2, openai-community/gpt2); a private repo needs a token in HF_TOKEN`
    );
  }
  if (status === 403) {
    return (
      `Access to "${repoId}" was refused by ${settings.endpoint} (HTTP 403) — if the model is gated, accept its ` +
      `terms at ${settings.endpoint}/${repoId} and set HF_TOKEN to a token of that account`
    );
  }
  if (status === 404 && (code === "RevisionNotFound" || code === undefined)) {
    return `${what} of "${repoId}" was not found on ${settings.endpoint} (HTTP 404) — check the name and --revision`;
  }
  return `${what} of "${repoId}" could not be fetched from ${settings.endpoint}: HTTP ${status}${code ? ` (${code})` : ""}`;
}

/** Wraps fetch so that network failures become HubUnreachableError naming the endpoint. */
export async function hubFetch(settings: HubSettings, url: string, init: RequestInit): Promise<Response> {
  try {
    return await settings.fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new HubUnreachableError(`cannot reach ${settings.endpoint} (${reason})`);
  }
}

/** HEADs a file and returns its commit, etag and size. Throws HubHttpError (e.g. 404) or HubUnreachableError. */
export async function fetchFileMetadata(
  settings: HubSettings,
  repoId: string,
  revision: string,
  filename: string,
): Promise<FileMetadata> {
  let url = fileUrl(settings.endpoint, repoId, revision, filename);
  const origin = new URL(url).origin;
  let seenCommit: string | null = null;
  for (let hop = 0; hop < 10; hop++) {
    const res = await hubFetch(settings, url, {
      method: "HEAD",
      redirect: "manual",
      // identity: Content-Length must be the file size, not a compressed size.
      headers: { ...authHeaders(settings), "accept-encoding": "identity" },
    });
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, url);
      // Same-host redirects (renamed repo, resolve-cache) are followed for the metadata, as
      // huggingface_hub does; an LFS redirect to the CDN carries X-Linked-Etag and is final.
      if (next.origin === origin && !res.headers.get("x-linked-etag")) {
        seenCommit = res.headers.get("x-repo-commit") ?? seenCommit;
        url = next.href;
        continue;
      }
    } else if (!res.ok) {
      const code = res.headers.get("x-error-code") ?? undefined;
      throw new HubHttpError(
        describeHttpError(res.status, code, repoId, `File ${filename}`, settings),
        res.status,
        code,
      );
    }
    const commit = res.headers.get("x-repo-commit") ?? seenCommit;
    const etag = res.headers.get("x-linked-etag") ?? res.headers.get("etag");
    if (!commit || !etag) {
      throw new HubHttpError(
        `${settings.endpoint} answered for ${filename} of "${repoId}" without X-Repo-Commit/ETag headers — ` +
          "is HF_ENDPOINT a Hugging Face hub (or a proxy that keeps these headers)?",
        res.status,
        undefined,
      );
    }
    const sizeHeader = res.headers.get("x-linked-size") ?? res.headers.get("content-length");
    const size = sizeHeader !== null && /^\d+$/.test(sizeHeader) ? Number(sizeHeader) : undefined;
    return {
      commit,
      etag: stripEtag(etag),
      size,
      url: fileUrl(settings.endpoint, repoId, revision, filename),
    };
  }
  throw new HubHttpError(`Too many redirects fetching ${filename} of "${repoId}"`, 310, undefined);
}
