/**
 * Hands memory the C library holds but no longer uses back to the system. glibc keeps what onnxruntime and
 * the weight arrays free while a model loads (its mmap threshold rises as large blocks are freed, and later
 * frees stay in the heap): ~0.3x the weights at GPT-2-small's shape, ~1 GB at GPT-2-XL's, held for the
 * process's life. `malloc_trim(0)` returns every free page (docs/benchmarks.md, "Memory"); Node has no
 * binding for it, so it is called through koffi's foreign-function interface. Elsewhere (musl, macOS,
 * Windows) this does nothing.
 */
import { createRequire } from "node:module";

type Trim = (pad: number) => number;
let trim: Trim | null | undefined;

function loadTrim(): Trim | null {
  if (process.platform !== "linux") return null;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  if (!report?.header?.glibcVersionRuntime) return null;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as {
      load(path: string): { func(signature: string): Trim };
    };
    return koffi.load("libc.so.6").func("int malloc_trim(size_t pad)");
  } catch {
    return null; // no FFI here: memory is still correct, only not returned early
  }
}

/** Returns freed heap memory to the system (glibc only; otherwise a no-op). */
export function returnFreedMemory(): void {
  if (trim === undefined) trim = loadTrim();
  trim?.(0);
}
