/**
 * The fast, exact path. Each prompt pair runs on its own (so padding never costs anything), and each
 * patched run computes only what can differ from the corrupted run:
 * - it starts at the patched hook's block, from the corrupted run's residual entering that block
 *   (model/partial-runs.ts records a run and continues copies of it);
 * - positions before the first position where the patch changes a value are identical to the corrupted
 *   run, so their keys/values come from the corrupted run's cache (one shared copy for the whole chunk)
 *   and only later positions are computed;
 * - many patched copies go through one batched forward (chunks bounded in rows, so memory stays bounded);
 * - the metric reads ln_final's output at the final position and only the answer columns of W_U.
 * Every step is the engine's own forward, so the result equals the straightforward path up to float
 * rounding of differently-sized matrix products.
 */
import { parseHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { HookSpec } from "../model/hooks.ts";
import { type ContinueFrom, continueRun, type RecordedRun, recordRun } from "../model/partial-runs.ts";
import { stridesOf } from "../tensor/tensor.ts";
import { checkpointYield } from "../util/checkpoint-yield.ts";
import { memoryBudget } from "../util/memory-budget.ts";
import type { Readout } from "./metric.ts";
import { assembleResult, type PatchSweepOptions, setupSweep } from "./sweep.ts";
import { hookLayout, type Selector, selectElements } from "./targets.ts";
import { type PatchResult, patchAborted } from "./types.ts";

/** One patched copy inside a chunk: which result cell, and what to write where (offsets in the patched run's layout). */
interface PatchJob {
  site: number;
  hook: string;
  offsets: Int32Array;
  values: Float32Array;
}

interface JobGroup {
  /** Block the patched run starts at; `fromEmbed` when the patch is on an embedding hook. */
  layer: number;
  fromEmbed: boolean;
  /** First position that can differ from the corrupted run. */
  p0: number;
  jobs: PatchJob[];
}

export async function patchFast(model: HookedTransformer, opts: PatchSweepOptions): Promise<PatchResult> {
  const setup = setupSweep(model, opts);
  const { pairs, plan, reader } = setup;
  const B = pairs.clean.length;
  const siteHooks = new Set(plan.sites.map((s) => s.hook));

  const patched: Readout[][] = plan.sites.map(() => new Array<Readout>(B));
  const cleanReadouts: Readout[] = [];
  const corruptedReadouts: Readout[] = [];
  const total = plan.sites.length * B;
  let done = 0;
  const chunkSize = opts.chunkSize ?? 256;
  const rowBudget = opts.rowBudget ?? rowBudgetFor(model, pairs.nPos);

  for (let b = 0; b < B; b++) {
    const n = pairs.lengths[b];
    const clean = recordRun(model, pairs.clean[b], { hooks: siteHooks, continuable: false });
    const corrupted = recordRun(model, pairs.corrupted[b], { hooks: siteHooks, continuable: true });
    const corruptedReadout = reader.fromNormalized(b, corrupted.finalNormalized, 1)[0];
    cleanReadouts.push(reader.fromNormalized(b, clean.finalNormalized, 1)[0]);
    corruptedReadouts.push(corruptedReadout);

    const groups = new Map<string, JobGroup>();
    plan.sites.forEach((site, s) => {
      const job = planJob(model, site.hook, site.selectors, n, clean.acts, corrupted.acts, s);
      if (!job) {
        patched[s][b] = corruptedReadout; // the patch changes nothing
        done++;
        return;
      }
      const key = `${job.fromEmbed ? "e" : "b"}${job.layer}:${job.p0}`;
      const g = groups.get(key) ?? { layer: job.layer, fromEmbed: job.fromEmbed, p0: job.p0, jobs: [] };
      g.jobs.push(job.job);
      groups.set(key, g);
    });
    opts.onProgress?.(done, total);

    for (const g of groups.values()) {
      const rows = n - g.p0;
      const size = Math.max(1, Math.min(chunkSize, Math.floor(rowBudget / rows)));
      for (let i = 0; i < g.jobs.length; i += size) {
        const jobs = g.jobs.slice(i, i + size);
        const readouts = reader.fromNormalized(
          b,
          runChunk(model, g, jobs, corrupted, pairs.corrupted[b]),
          jobs.length,
        );
        jobs.forEach((j, c) => {
          patched[j.site][b] = readouts[c];
        });
        done += jobs.length;
        opts.onProgress?.(done, total);
        await checkpointYield(opts.signal, patchAborted);
      }
    }
  }
  return assembleResult(setup, model, cleanReadouts, corruptedReadouts, patched, "exact");
}

/**
 * Where a site's patched run starts and what it writes, for one prompt of `n` positions; null when the
 * clean and corrupted values of every selected element are equal (the patch is a no-op).
 */
function planJob(
  model: HookedTransformer,
  hook: string,
  selectors: readonly Selector[],
  n: number,
  cleanActs: ReadonlyMap<string, Float32Array>,
  corruptActs: ReadonlyMap<string, Float32Array>,
  site: number,
): { layer: number; fromEmbed: boolean; p0: number; job: PatchJob } | null {
  const layout = hookLayout(hook, model.cfg, n);
  const { offsets, positions } = selectElements(selectors, layout);
  const clean = cleanActs.get(hook)!;
  const corrupt = corruptActs.get(hook)!;
  let p0 = n;
  for (let i = 0; i < offsets.length; i++) {
    if (clean[offsets[i]] !== corrupt[offsets[i]] && positions[i] < p0) p0 = positions[i];
  }
  if (p0 === n) return null;
  // The patched run holds positions p0..n-1 on the position axis; other axes keep their length.
  const shape = layout.shape;
  const patchedShape = shape.map((d, a) => (a === layout.posAxis ? n - p0 : d));
  const strides = stridesOf(shape);
  const patchedStrides = stridesOf(patchedShape);
  const outOffsets: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < offsets.length; i++) {
    const o = offsets[i];
    if (clean[o] === corrupt[o]) continue;
    let rest = o;
    let mapped = 0;
    for (let a = 0; a < shape.length; a++) {
      let ix = Math.floor(rest / strides[a]);
      rest -= ix * strides[a];
      if (a === layout.posAxis) ix -= p0;
      mapped += ix * patchedStrides[a];
    }
    outOffsets.push(mapped);
    values.push(clean[o]);
  }
  const fromEmbed = parseHookName(hook).layer === null && layout.layer === 0;
  return {
    layer: layout.layer,
    fromEmbed,
    p0,
    job: { site, hook, offsets: Int32Array.from(outOffsets), values: Float32Array.from(values) },
  };
}

/**
 * One batched forward of `jobs` patched copies of the corrupted run, from block `g.layer` and position
 * `g.p0`: ln_final's output at the final position of each copy, [copies, d_model].
 */
function runChunk(
  model: HookedTransformer,
  g: JobGroup,
  jobs: readonly PatchJob[],
  corrupted: RecordedRun,
  corruptedTokens: readonly number[],
): Float32Array {
  const { nLayers: L, dModel: D } = model.cfg;
  const C = jobs.length;
  const n = corrupted.n;
  const P = n - g.p0;
  // A patch on a block's output (mlp.hook_post, hook_mlp_out, hook_resid_post) only adds to the residual
  // after that block: build that residual directly and start one block later (exact: nothing in between).
  // A neuron reaches the residual through W_out only without a norm after the MLP (Gemma 2's ln2_post).
  const additiveHooks = model.cfg.postNorms ? POST_NORM_ADDITIVE_HOOKS : ADDITIVE_HOOKS;
  const additive = !g.fromEmbed && jobs.every((j) => additiveHooks.has(parseHookName(j.hook).hook));
  if (additive) return runAdditiveChunk(model, g, jobs, corrupted);
  let from: ContinueFrom;
  if (g.fromEmbed) {
    const tokens = new Int32Array(C * P);
    for (let c = 0; c < C; c++) tokens.set(corruptedTokens.slice(g.p0), c * P);
    from = { embed: tokens };
  } else {
    const src = corrupted.residualEntering(g.layer).subarray(g.p0 * D, n * D);
    const residual = new Float32Array(C * P * D);
    for (let c = 0; c < C; c++) residual.set(src, c * P * D);
    from = { block: g.layer, residual };
  }
  const byHook = new Map<string, number[]>();
  jobs.forEach((j, c) => {
    const list = byHook.get(j.hook) ?? [];
    list.push(c);
    byHook.set(j.hook, list);
  });
  const hooks: HookSpec[] = [...byHook].map(([hook, members]) => [
    hook,
    (act) => {
      const per = act.data.length / C;
      for (const c of members) {
        const { offsets, values } = jobs[c];
        const base = c * per;
        for (let i = 0; i < offsets.length; i++) act.data[base + offsets[i]] = values[i];
      }
    },
  ]);
  return continueRun(model, {
    run: corrupted,
    copies: C,
    fromPos: g.p0,
    from,
    hooks,
    // The metric reads the final position only; hooks in the last block or after it see all positions.
    finalPositionOnly: jobs.every((j) => {
      const layer = parseHookName(j.hook).layer;
      return layer === null ? j.hook.startsWith("hook_") : layer < L - 1;
    }),
  });
}

const ADDITIVE_HOOKS: ReadonlySet<string> = new Set(["mlp.hook_post", "hook_mlp_out", "hook_resid_post"]);
const POST_NORM_ADDITIVE_HOOKS: ReadonlySet<string> = new Set(["hook_mlp_out", "hook_resid_post"]);

/**
 * Patches at the output of block l: the patched residual after block l is the corrupted one plus
 * (clean − corrupted) of each patched element, mapped to d_model (through W_out for MLP neurons).
 */
function runAdditiveChunk(
  model: HookedTransformer,
  g: JobGroup,
  jobs: readonly PatchJob[],
  corrupted: RecordedRun,
): Float32Array {
  const { dModel: D, dMlp } = model.cfg;
  const C = jobs.length;
  const n = corrupted.n;
  const P = n - g.p0;
  const next = g.layer + 1;
  const base = corrupted.residualEntering(next).subarray(g.p0 * D, n * D);
  const residual = new Float32Array(C * P * D);
  const W_out = model.weights.blocks[g.layer].W_out.data;
  jobs.forEach((job, c) => {
    const out = residual.subarray(c * P * D, (c + 1) * P * D);
    out.set(base);
    const corr = corrupted.acts.get(job.hook)!;
    const neurons = parseHookName(job.hook).hook === "mlp.hook_post";
    const width = neurons ? dMlp : D;
    for (let i = 0; i < job.offsets.length; i++) {
      const o = job.offsets[i];
      const pos = Math.floor(o / width);
      const unit = o - pos * width;
      const delta = job.values[i] - corr[(pos + g.p0) * width + unit];
      if (neurons) {
        const w = W_out.subarray(unit * D, (unit + 1) * D);
        for (let d = 0; d < D; d++) out[pos * D + d] += delta * w[d];
      } else {
        out[pos * D + unit] += delta;
      }
    }
  });
  return continueRun(model, {
    run: corrupted,
    copies: C,
    fromPos: g.p0,
    from: { block: next, residual },
    hooks: [],
    finalPositionOnly: true,
  });
}

/**
 * Positions of patched copies per batched forward: at most 4096, and fewer when a quarter of the free
 * memory would not hold their activations (a block's residuals, q/k/v, MLP activations and attention
 * scores, about 4 bytes x (16 d_model + 4 d_mlp + 2 n_heads x positions) per position, hooks included).
 */
export function rowBudgetFor(model: HookedTransformer, nPos: number, availableBytes?: number): number {
  const { dModel: D, dMlp, nHeads: H } = model.cfg;
  const bytesPerRow = 4 * (16 * D + 4 * dMlp + 2 * H * nPos);
  const available = availableBytes ?? memoryBudget().availableBytes;
  return Math.max(1, Math.min(4096, Math.floor(available / 4 / bytesPerRow)));
}
