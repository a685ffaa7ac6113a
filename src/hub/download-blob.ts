/**
 * Downloading one file into the cache's blobs/ folder: written to `<blob>.incomplete`, resumed with
 * a Range request after an interruption, checked (size; sha256 for LFS files), then renamed into
 * place — so `blobs/<etag>` only ever exists complete and verified.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { authHeaders, describeHttpError, HubHttpError, HubUnreachableError, hubFetch } from "./hub-http.ts";
import type { HubSettings } from "./settings.ts";

export interface BlobRequest {
  repoId: string;
  filename: string;
  url: string;
  blobPath: string;
  etag: string;
  expectedSize: number | undefined;
  /** Called as bytes arrive: (bytes on disk, expected total). */
  onProgress?: (done: number, total: number | undefined) => void;
}

/** A failure worth retrying (resuming): dropped connection, short body, 5xx. */
class RetryableError extends Error {}

const MAX_ATTEMPTS = 5;
const RETRY_BASE_MS = 200;
const SHA256_HEX = /^[0-9a-f]{64}$/;

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk);
  return hash.digest("hex");
}

/** One GET from `start`; appends to the incomplete file. Throws on network failure mid-body. */
async function fetchInto(
  settings: HubSettings,
  req: BlobRequest,
  incomplete: string,
  start: number,
): Promise<void> {
  const headers: Record<string, string> = { ...authHeaders(settings), "accept-encoding": "identity" };
  if (start > 0) headers.range = `bytes=${start}-`;
  const res = await hubFetch(settings, req.url, { headers, redirect: "follow" });
  if (res.status === 416) {
    // Our partial file is not a prefix the server can continue (e.g. it is already whole, or too long).
    await res.body?.cancel();
    if (req.expectedSize !== undefined && start === req.expectedSize) return;
    await rm(incomplete, { force: true });
    throw new RetryableError("server refused the resume range; restarting");
  }
  if (!res.ok) {
    await res.body?.cancel();
    const code = res.headers.get("x-error-code") ?? undefined;
    const message = describeHttpError(res.status, code, req.repoId, `File ${req.filename}`, settings);
    if (res.status >= 500) throw new RetryableError(message);
    throw new HubHttpError(message, res.status, code);
  }
  // 206 continues our partial file; 200 means the server ignored the range: start over.
  let offset = start;
  if (res.status !== 206) offset = 0;
  else if (!(res.headers.get("content-range") ?? "").startsWith(`bytes ${start}-`)) {
    await res.body?.cancel();
    await rm(incomplete, { force: true });
    throw new RetryableError(`unexpected Content-Range ${res.headers.get("content-range")}; restarting`);
  }
  const file = await open(incomplete, offset === 0 ? "w" : "r+");
  try {
    if (!res.body) return;
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      await file.write(chunk, 0, chunk.length, offset);
      offset += chunk.length;
      req.onProgress?.(offset, req.expectedSize);
    }
  } catch (err) {
    throw new RetryableError(`connection lost after ${offset} bytes (${(err as Error).message})`);
  } finally {
    await file.close();
  }
}

/** Downloads `req.url` to `req.blobPath`, resuming and verifying. Nothing is left at blobPath on failure. */
export async function downloadBlob(settings: HubSettings, req: BlobRequest): Promise<void> {
  await mkdir(dirname(req.blobPath), { recursive: true });
  const incomplete = `${req.blobPath}.incomplete`;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, RETRY_BASE_MS * 2 ** (attempt - 1)));
    let have = await sizeOf(incomplete);
    if (req.expectedSize !== undefined && have > req.expectedSize) {
      await rm(incomplete, { force: true });
      have = 0;
    }
    try {
      if (req.expectedSize === undefined || have < req.expectedSize)
        await fetchInto(settings, req, incomplete, have);
    } catch (err) {
      if (err instanceof RetryableError || err instanceof HubUnreachableError) {
        lastError = err;
        continue;
      }
      throw err;
    }
    const size = await sizeOf(incomplete);
    if (req.expectedSize !== undefined && size < req.expectedSize) {
      lastError = new Error(`got ${size} of ${req.expectedSize} bytes`);
      continue;
    }
    if (req.expectedSize !== undefined && size !== req.expectedSize) {
      await rm(incomplete, { force: true });
      throw new Error(
        `Download of ${req.filename} from "${req.repoId}" has ${size} bytes, expected ${req.expectedSize}`,
      );
    }
    if (SHA256_HEX.test(req.etag)) {
      const actual = await sha256OfFile(incomplete);
      if (actual !== req.etag) {
        await rm(incomplete, { force: true });
        throw new Error(
          `Download of ${req.filename} from "${req.repoId}" is corrupt: sha256 ${actual} does not match the hub's ` +
            `${req.etag} — the partial file was deleted; run the command again`,
        );
      }
    }
    await rename(incomplete, req.blobPath);
    return;
  }
  throw new Error(
    `Download of ${req.filename} from "${req.repoId}" failed after ${MAX_ATTEMPTS} attempts ` +
      `(${lastError?.message}); the partial file ${incomplete} is kept and will be resumed next time`,
  );
}
