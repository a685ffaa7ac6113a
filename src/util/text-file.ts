/** Reading text files people hand to circuitscope: strict UTF-8, so damaged text never runs silently. */
import { readFileSync } from "node:fs";

/** Reads `path` as UTF-8; a byte sequence that is not UTF-8 is an error naming its byte offset. */
export function readUtf8File(path: string, what: string): string {
  const bytes = readFileSync(path);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8Offset(bytes);
    throw new Error(
      `${what} ${path} is not valid UTF-8 (byte offset ${offset}, value 0x${bytes[offset].toString(16).padStart(2, "0")}): ` +
        "save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`) and retry.",
    );
  }
}

/**
 * Offset of the first byte of the first invalid sequence. A streaming decoder accepts a prefix that only
 * ends inside a sequence, so "prefix k fails" is monotone in k and a binary search finds the first failing
 * length; the bad sequence starts at the last complete prefix before it (at most 3 bytes back).
 */
export function firstInvalidUtf8Offset(bytes: Uint8Array): number {
  const decodes = (k: number, stream: boolean) => {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, k), { stream });
      return true;
    } catch {
      return false;
    }
  };
  let hi = bytes.length; // first failing prefix length (the whole text, if only its end is cut short)
  if (!decodes(hi, true)) {
    let lo = 0;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (decodes(mid, true)) lo = mid;
      else hi = mid;
    }
  }
  for (let k = hi - 1; k > hi - 5 && k > 0; k--) if (decodes(k, false)) return k;
  return 0;
}
