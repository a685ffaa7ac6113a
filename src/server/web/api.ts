/** Browser side of the JSON API: every failure becomes an ApiCallError carrying the server's message and fix. */

export class ApiCallError extends Error {
  constructor(
    message: string,
    readonly fix?: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiCallError(
      `Could not reach the server: ${(err as Error).message}`,
      "Is `circuitscope serve` still running?",
    );
  }
  const json = (await res.json().catch(() => null)) as { error?: { message: string; fix?: string } } | null;
  if (!res.ok) {
    throw new ApiCallError(json?.error?.message ?? `HTTP ${res.status}`, json?.error?.fix, res.status);
  }
  return json as T;
}

export const api = {
  get: <T>(path: string) => call<T>("GET", path),
  post: <T>(path: string, body: unknown) => call<T>("POST", path, body),
  delete: <T>(path: string) => call<T>("DELETE", path),
};
