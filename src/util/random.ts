/**
 * Small seeded PRNGs, so random checkpoints, test inputs and benchmarks are reproducible
 * without a dependency (Math.random cannot be seeded).
 */

/** A uniform generator on [0, 1). */
export type Rng = () => number;

/** mulberry32: a tiny 32-bit-state generator, good enough for test data (not for cryptography). */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One standard normal sample by the Box–Muller transform (uses two uniforms per call). */
export function randn(rng: Rng): number {
  // 1 - u keeps the log argument in (0, 1], so log never sees 0.
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
