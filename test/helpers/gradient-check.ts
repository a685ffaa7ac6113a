/** Every hook's gradient of a run against central finite differences of a float64 reference. */
import assert from "node:assert/strict";
import type { GradientRun } from "../../src/gradients/backward.ts";
import { mulberry32, randn } from "../../src/util/random.ts";

export interface GradientCheckOptions {
  /** The step (default 1e-5, for a float64 reference). */
  h?: number;
  /** Scale each direction to unit length (default false: a standard normal entry per element). */
  unit?: boolean;
  /**
   * Richardson's combination (4 D(h/2) − D(h)) / 3 of two central differences, so that the h² term cancels:
   * for a float32 forward, whose rounding needs a large step (default false).
   */
  richardson?: boolean;
  /** Allowed |fd − backward| = abs + rel · |fd| (default 1e-3 and 2e-3). */
  abs?: number;
  rel?: number;
}

/**
 * For each hook of `run`, a random direction (zero on masked -inf scores, which have no neighbourhood):
 * the backward pass' directional derivative must equal (value(+h) - value(-h)) / 2h, where
 * `value(hook, dir, h)` is the reference's metric with the hook's activation moved by h · dir. Returns how
 * many hooks were checked.
 */
export function checkEveryHookGradient(
  run: Pick<GradientRun, "cache" | "grads">,
  value: (hook: string, dir: Float64Array, h: number) => number,
  opts: GradientCheckOptions = {},
): number {
  const { h = 1e-5, unit = false, richardson = false, abs = 1e-3, rel = 2e-3 } = opts;
  const rng = mulberry32(7);
  let checked = 0;
  for (const hook of run.grads.names) {
    const grad = run.grads.get(hook).data;
    const act = run.cache.get(hook).data;
    const dirv = Float64Array.from(act, (x) => (Number.isFinite(x) ? randn(rng) : 0));
    if (unit) {
      const norm = Math.hypot(...dirv);
      for (let i = 0; i < dirv.length; i++) dirv[i] /= norm;
    }
    let g = 0;
    for (let i = 0; i < grad.length; i++) g += dirv[i] * grad[i];
    const central = (step: number) => (value(hook, dirv, step) - value(hook, dirv, -step)) / (2 * step);
    const fd = richardson ? (4 * central(h / 2) - central(h)) / 3 : central(h);
    assert.ok(
      Math.abs(fd - g) <= abs + rel * Math.abs(fd),
      `${hook}: backward ${g}, finite difference ${fd}`,
    );
    checked++;
  }
  return checked;
}

/**
 * The `value` checkEveryHookGradient wants, from a float64 reference forward that takes a hook: the
 * metric on the final position's logits with the hook's activation moved by h · dir — logit(answer) −
 * logit(wrong), or log p(answer) with `logProb`.
 */
export function perturbedReferenceMetric(
  forward: (hook: (name: string, act: { data: Float64Array }) => void) => Map<string, { data: Float64Array }>,
  m: { V: number; P: number; answer: number; wrong: number; logProb: boolean },
): (hook: string, dir: Float64Array, h: number) => number {
  return (hook, dirv, h) => {
    const acts = forward((n, act) => {
      if (n === hook) for (let k = 0; k < act.data.length; k++) act.data[k] += h * dirv[k];
    });
    const row = acts.get("logits")!.data.subarray((m.P - 1) * m.V, m.P * m.V);
    if (!m.logProb) return row[m.answer] - row[m.wrong];
    const max = Math.max(...row);
    return row[m.answer] - max - Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
  };
}
