/**
 * A local stand-in for the Hugging Face hub's file endpoint, on 127.0.0.1 at a random port:
 * `/{repo}/resolve/{revision}/{file}` with the hub's headers (X-Repo-Commit, ETag, X-Linked-Etag,
 * X-Linked-Size, X-Error-Code). LFS files (*.safetensors, *.bin) redirect to `/cdn/{sha256}`,
 * which serves Range requests. Knobs simulate dropped connections and bad checksums.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeRepo {
  commit: string;
  files: Record<string, Buffer>;
}

export interface FakeHubOptions {
  repos: Record<string, FakeRepo>;
  /** Drop the connection after this many body bytes on the first GET of each named file. */
  dropFirstGet?: Record<string, number>;
  /** Advertise a wrong sha256 for these files. */
  wrongSha256?: string[];
  /** Old repo id -> new one: requests are redirected (307, relative Location) as the hub does for renames. */
  renamed?: Record<string, string>;
  /** Answer Range requests with the whole file (200) instead of 206. */
  ignoreRange?: boolean;
}

export interface RecordedRequest {
  method: string;
  url: string;
  range: string | undefined;
  authorization: string | undefined;
}

export interface FakeHub {
  endpoint: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
/** Git's blob id, which the hub uses as ETag for non-LFS files. */
const gitBlobSha1 = (b: Buffer) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
const isLfs = (file: string) => /\.(safetensors|bin)$/.test(file);

export async function startFakeHub(opts: FakeHubOptions): Promise<FakeHub> {
  const requests: RecordedRequest[] = [];
  const droppedOnce = new Set<string>();
  const blobsBySha = new Map<string, { file: string; content: Buffer }>();
  for (const repo of Object.values(opts.repos)) {
    for (const [file, content] of Object.entries(repo.files))
      blobsBySha.set(sha256(content), { file, content });
  }

  const notFound = (res: ServerResponse, code: string, status = 404) => {
    res.writeHead(status, { "x-error-code": code, "content-type": "text/plain" });
    res.end(code);
  };

  const serveContent = (
    req: IncomingMessage,
    res: ServerResponse,
    file: string,
    content: Buffer,
    headers: Record<string, string>,
  ) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    let start = 0;
    if (range && !opts.ignoreRange) {
      start = Number(range[1]);
      if (start >= content.length) {
        res.writeHead(416, { "content-range": `bytes */${content.length}` });
        res.end();
        return;
      }
      res.writeHead(206, {
        ...headers,
        "content-length": String(content.length - start),
        "content-range": `bytes ${start}-${content.length - 1}/${content.length}`,
      });
    } else {
      res.writeHead(200, { ...headers, "content-length": String(content.length) });
    }
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const dropAt = opts.dropFirstGet?.[file];
    if (dropAt !== undefined && !droppedOnce.has(file)) {
      droppedOnce.add(file);
      // Send part of the body, then cut the connection as a flaky network would.
      res.write(content.subarray(start, start + dropAt), () => res.socket?.destroy());
      return;
    }
    res.end(content.subarray(start));
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    requests.push({
      method: req.method ?? "",
      url: url.pathname,
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      const blob = blobsBySha.get(cdn[1]);
      if (!blob) return notFound(res, "EntryNotFound");
      return serveContent(req, res, blob.file, blob.content, { "content-type": "application/octet-stream" });
    }
    const match = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (!match) return notFound(res, "EntryNotFound");
    const [, repoId, revision, file] = match.map(decodeURIComponent);
    const newId = opts.renamed?.[repoId];
    if (newId) {
      res.writeHead(307, { location: url.pathname.replace(`/${repoId}/`, `/${newId}/`) });
      res.end();
      return;
    }
    const repo = opts.repos[repoId];
    if (!repo) return notFound(res, "RepoNotFound", 401);
    if (revision !== "main" && revision !== repo.commit) return notFound(res, "RevisionNotFound");
    const content = repo.files[file];
    if (content === undefined) return notFound(res, "EntryNotFound");
    const common = { "x-repo-commit": repo.commit };
    if (isLfs(file)) {
      const sha = opts.wrongSha256?.includes(file) ? sha256(Buffer.from("something else")) : sha256(content);
      res.writeHead(302, {
        ...common,
        etag: `"${gitBlobSha1(Buffer.from(`pointer ${sha}`))}"`,
        "x-linked-etag": `"${sha}"`,
        "x-linked-size": String(content.length),
        location: `/cdn/${sha256(content)}`,
      });
      res.end();
      return;
    }
    serveContent(req, res, file, content, { ...common, etag: `"${gitBlobSha1(content)}"` });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
