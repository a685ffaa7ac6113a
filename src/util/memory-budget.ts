import { freemem } from "node:os";

/** One part of what a piece of work will hold in memory at its peak. */
export interface MemoryNeed {
  /** What it is for, as a verb phrase ("load the model (…)", "cache the activations"). */
  what: string;
  bytes: number;
}

export interface MemoryBudget {
  /** Bytes this process may still take; from `--memory-limit`, else the machine's available memory. */
  availableBytes: number;
  /** Where that figure comes from, for the error message. */
  source: string;
}

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "512M", "8G", "1.5GiB", "2000000000" → bytes; throws a usage message on anything else. */
export function parseByteSize(text: string, flag = "--memory-limit"): number {
  const m = text.trim().match(/^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i);
  if (!m) throw new Error(`${flag} "${text}" is not a size: write e.g. 8G, 512M or a number of bytes`);
  const bytes = Number(m[1]) * UNITS[m[2].toUpperCase()];
  if (!(bytes > 0)) throw new Error(`${flag} must be more than 0, got "${text}"`);
  return bytes;
}

/**
 * What this process may still allocate: an explicit limit (minus what it already holds), else the
 * smaller of the machine's available memory and the cgroup's limit (containers).
 */
export function memoryBudget(limitBytes?: number): MemoryBudget {
  const rss = process.memoryUsage().rss;
  if (limitBytes !== undefined) {
    return {
      availableBytes: Math.max(0, limitBytes - rss),
      source: `the limit of ${formatBytes(limitBytes)}`,
    };
  }
  let available = freemem();
  let source = "the machine's available memory";
  const constrained = process.constrainedMemory?.() ?? 0;
  if (constrained > 0 && constrained < Number.MAX_SAFE_INTEGER && constrained - rss < available) {
    available = Math.max(0, constrained - rss);
    source = "this container's memory limit";
  }
  return { availableBytes: available, source };
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
  return `${Math.round(bytes / 1024 ** 2)} MB`;
}

/** Raised before any large allocation when the work would not fit. */
export class MemoryBudgetError extends Error {}

/**
 * Throws a MemoryBudgetError naming each need, the total, what is available and the ways out, when the
 * needs do not fit — so the user gets a clear message instead of swapping or the OOM killer.
 */
export function checkMemoryFits(needs: readonly MemoryNeed[], budget: MemoryBudget, options: string[]): void {
  const total = needs.reduce((s, n) => s + n.bytes, 0);
  if (total <= budget.availableBytes) return;
  const parts =
    needs.length === 1
      ? `to ${needs[0].what}`
      : `(${needs.map((n) => `${n.what}: ${formatBytes(n.bytes)}`).join(" + ")})`;
  throw new MemoryBudgetError(
    `not enough memory: this needs about ${formatBytes(total)} ${parts}, but ${budget.source} leaves ` +
      `${formatBytes(budget.availableBytes)}. ${options.length ? `Options: ${options.join("; ")}.` : ""}`.trim(),
  );
}
