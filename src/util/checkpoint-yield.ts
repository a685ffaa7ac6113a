/**
 * Long work (patching sweeps, circuit searches) runs in chunks; between chunks it lets signal handlers
 * (Ctrl-C) and the event loop run, then stops if asked to.
 */

/** Yields to the event loop, then throws `stopped()` if `signal` was aborted meanwhile. */
export async function checkpointYield(signal: AbortSignal | undefined, stopped: () => Error): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  if (signal?.aborted) throw stopped();
}
