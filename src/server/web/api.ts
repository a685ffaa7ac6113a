/** Browser side of the JSON API: every failure becomes an ApiCallError carrying the server's message and fix. */
import { TOKEN_HEADER } from "../token-header.ts";

export class ApiCallError extends Error {
  constructor(
    message: string,
    readonly fix?: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "circuitscope-token";

/**
 * The session token arrives once, in the address `circuitscope serve` printed (?token=...). It is kept in
 * this origin's storage and taken out of the address bar, so it does not end up in shared view links,
 * bookmarks or history; other tabs and reloads on this server find it in storage.
 */
function takeSessionToken(): string | null {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl !== null) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    return fromUrl;
  }
  return localStorage.getItem(TOKEN_KEY);
}

const token = takeSessionToken();

function headers(json: boolean): Record<string, string> {
  return {
    ...(json ? { "content-type": "application/json" } : {}),
    ...(token !== null ? { [TOKEN_HEADER]: token } : {}),
  };
}

async function send(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (err) {
    throw new ApiCallError(
      `Could not reach the server: ${(err as Error).message}`,
      "Is `circuitscope serve` still running?",
    );
  }
  if (!res.ok) {
    const json = (await res.json().catch(() => null)) as { error?: { message: string; fix?: string } } | null;
    throw new ApiCallError(json?.error?.message ?? `HTTP ${res.status}`, json?.error?.fix, res.status);
  }
  return res;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  return (await (await send(method, path, body)).json()) as T;
}

/**
 * Follows a server-sent event stream with fetch (EventSource cannot send the token header): calls
 * `onEvent` with each `data:` payload until the stream ends or `signal` aborts. Rejects if the
 * connection fails; resolves when the server ends the stream or the caller aborts.
 */
async function events(path: string, onEvent: (data: string) => void, signal: AbortSignal): Promise<void> {
  const res = await send("GET", path, undefined, signal);
  if (!res.body) throw new ApiCallError("The server sent no event stream.");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const chunk = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = chunk
          .split("\n")
          .filter((line) => line.startsWith("data: "))
          .map((line) => line.slice(6))
          .join("\n");
        if (data) onEvent(data);
        end = buffer.indexOf("\n\n");
      }
    }
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  }
}

export const api = {
  get: <T>(path: string) => call<T>("GET", path),
  post: <T>(path: string, body: unknown) => call<T>("POST", path, body),
  delete: <T>(path: string) => call<T>("DELETE", path),
  events,
};
