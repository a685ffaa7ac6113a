import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { returnFreedMemory } from "./return-freed-memory.ts";

let gc: (() => void) | null = null;

/**
 * A full garbage collection now. Used while a model is handed to the kernel backend: the backend's
 * allocations are invisible to V8, which would otherwise keep the dropped JavaScript copies of the
 * weights until long after (the load's peak memory would hold the model twice). Node exposes `gc` only
 * behind a flag; setting the flag at run time and taking `gc` from a fresh context is the documented
 * way to reach it without restarting the process. Twice: the array buffers a collection finds dead are
 * freed by a sweeper that finishes only at the next collection (measured: one collection returned 27 of
 * 153 MB of a dropped Float32Array to the system, the second the rest).
 */
export function collectGarbage(): void {
  collectJsGarbage();
  returnFreedMemory(); // and what the C library kept of onnxruntime's frees
}

function collectJsGarbage(): void {
  if (!gc) {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
  gc();
}
