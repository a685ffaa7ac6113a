/**
 * Long work (patching sweeps, circuit searches) runs in chunks; between chunks it lets signal handlers
 * (Ctrl-C) and the event loop run, then stops if asked to.
 */

/** Yields to the event loop, then throws `stopped()` if `signal` was aborted meanwhile. */
export async function checkpointYield(signal: AbortSignal | undefined, stopped: () => Error): Promise<void> {
  if (await yieldThenAborted(signal)) throw stopped();
}

/** Yields to the event loop; whether `signal` was aborted meanwhile (for work that ends quietly, not by throwing). */
export async function yieldThenAborted(signal: AbortSignal | undefined): Promise<boolean> {
  await new Promise<void>((r) => setImmediate(r));
  return signal?.aborted === true;
}
