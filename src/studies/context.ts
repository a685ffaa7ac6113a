/**
 * What every stage of the study pipeline sees: the model, the plan, the validated groups, seeded bootstrap
 * options, progress, and the per-prompt measurements several stages share (computed once, on first use).
 */
import type { BootstrapOptions } from "../analysis/stats.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { NeuronIndex } from "../neurons/neuron-index.ts";
import type { AttributionTarget } from "../patching/attribution-patching.ts";
import type { PatchTarget } from "../patching/targets.ts";
import {
  attributionEffects,
  exactEffects,
  type GroupAttribution,
  groupAttribution,
  logitDiffsOf,
  type PairTokens,
  type Tick,
} from "./pair-measures.ts";
import type { ValidatedPair } from "./prompts.ts";
import type { GroupResult, StudyResults } from "./results.ts";
import { type LayerComponent, layerComponents } from "./sites.ts";
import type { StudyPlan, StudySpec } from "./spec.ts";

/** One group's validated pairs and their tokens; `index` is its place among all groups (seeds use it). */
export interface PreparedGroup {
  name: string;
  index: number;
  pairs: ValidatedPair[];
  tokens: PairTokens;
}

export function toPairTokens(pairs: readonly ValidatedPair[]): PairTokens {
  return {
    clean: pairs.map((p) => p.cleanTokens),
    corrupted: pairs.map((p) => p.corruptedTokens),
    answer: pairs.map((p) => p.answerToken),
    wrong: pairs.map((p) => p.wrongToken),
  };
}

/** Memoise one value per group name. */
function perGroup<T>(compute: (g: PreparedGroup) => T): (g: PreparedGroup) => T {
  const memo = new Map<string, T>();
  return (g) => {
    if (!memo.has(g.name)) memo.set(g.name, compute(g));
    return memo.get(g.name)!;
  };
}

export interface StudyContextOptions {
  model: HookedTransformer;
  modelName: string;
  spec: StudySpec;
  plan: StudyPlan;
  groups: PreparedGroup[];
  focus: string;
  /** Adds n prompt passes to the progress total and returns the tick that reports them. */
  work: (n: number) => Tick;
  neuronIndex: NeuronIndex | null;
}

export class StudyContext {
  readonly model: HookedTransformer;
  readonly modelName: string;
  readonly spec: StudySpec;
  readonly plan: StudyPlan;
  /** Every group with kept pairs, focus first. */
  readonly groups: PreparedGroup[];
  readonly focus: PreparedGroup;
  readonly neuronIndex: NeuronIndex | null;
  readonly work: (n: number) => Tick;
  /** Attn/MLP outputs per layer, the layer screen's sites. */
  readonly comps: LayerComponent[];
  /** Pieces left out of this run and why (stated in the Setup section). */
  readonly omitted: string[] = [];

  constructor(o: StudyContextOptions) {
    this.model = o.model;
    this.modelName = o.modelName;
    this.spec = o.spec;
    this.plan = o.plan;
    this.groups = o.groups;
    this.focus = o.groups.find((g) => g.name === o.focus)!;
    this.neuronIndex = o.neuronIndex;
    this.work = o.work;
    this.comps = layerComponents(o.model.cfg.nLayers);
  }

  /** Bootstrap options: the plan's resamples, a seed derived from the run's seed and a per-number offset. */
  boot(offset: number): BootstrapOptions {
    return { resamples: this.plan.resamples, seed: this.plan.seed * 7919 + offset };
  }

  /** Clean-run attribution (logit differences, residual readouts, head DLA), per prompt. */
  readonly cleanAttribution = perGroup(
    (g): GroupAttribution =>
      groupAttribution(this.model, g.tokens, this.plan.batchSize, this.work(g.tokens.clean.length)),
  );

  /** Corrupted-run attribution (its logit differences and head DLA), per prompt. */
  readonly corruptedAttribution = perGroup(
    (g): GroupAttribution =>
      groupAttribution(
        this.model,
        { ...g.tokens, clean: g.tokens.corrupted },
        this.plan.batchSize,
        this.work(g.tokens.clean.length),
      ),
  );

  /** Corrupted-run logit differences, per prompt. */
  readonly corrupted = perGroup((g) =>
    logitDiffsOf(
      this.model,
      g.tokens.corrupted,
      g.tokens.answer,
      g.tokens.wrong,
      this.plan.batchSize,
      this.work(g.tokens.clean.length),
    ),
  );

  /**
   * How screens are measured: attribution patching (estimates), or exact patching when attribution
   * patching is not available for this model (the reason is stated in meta.omitted).
   */
  screenMethod: "attribution" | "exact" = "attribution";

  /** Screen several targets: per target [site][prompt] effects (raw logit differences). */
  async screen(
    tokens: PairTokens,
    targets: readonly (AttributionTarget & PatchTarget)[],
  ): Promise<number[][][]> {
    if (this.screenMethod === "attribution") {
      try {
        return attributionEffects(this.model, tokens, targets, this.work(tokens.clean.length));
      } catch (e) {
        this.screenMethod = "exact";
        this.omitted.push(
          `attribution patching: not available for this model yet (its backward pass failed: ${(e as Error).message}); every screen is exact activation patching instead, so the "estimate" values are exact`,
        );
      }
    }
    const out: number[][][] = [];
    for (const t of targets)
      out.push(await exactEffects(this.model, tokens, t, this.work(tokens.clean.length)));
    return out;
  }

  /** The screen of every layer component, [component][prompt] (raw logit differences). */
  readonly layerScreenRaw = perGroup(
    async (g) => (await this.screen(g.tokens, [{ kind: "sites", sites: this.comps.map((c) => c.site) }]))[0],
  );

  /**
   * Groups whose mechanism is measured: the focus group and the spec's mechanism groups, when analysed and
   * with a gap to restore (patching fractions need one); the focus group first.
   */
  mechanismGroups(res: StudyResults): PreparedGroup[] {
    const names = new Set([this.focus.name, ...(this.spec.mechanismGroups ?? [])]);
    return this.analysed(res)
      .filter((g) => names.has(g.name) && (g === this.focus || groupOf(res, g.name).normalised))
      .sort((a, b) => Number(b === this.focus) - Number(a === this.focus));
  }

  /** Groups analysed beyond behaviour (all, unless the spec requires the clean behaviour to be there). */
  analysed(res: StudyResults): PreparedGroup[] {
    return this.groups.filter((g) => groupOf(res, g.name).analysed !== false);
  }
}

export function groupOf(res: StudyResults, name: string): GroupResult {
  const g = res.groups.find((x) => x.name === name);
  if (!g) throw new Error(`no results for group ${name}`);
  return g;
}

/**
 * The divisor of "fraction restored" for a group: its mean clean - corrupted gap, or null when the gap is
 * too small to divide by (its interval includes 0, or it is below `MIN_GAP`) — then patching effects are
 * reported as raw changes of the logit difference.
 */
export function normaliser(g: GroupResult): number | null {
  return g.normalised === false ? null : g.effect.mean;
}

/** Per-prompt effect → the reported value: a fraction of the gap, or raw when the group is not normalised. */
export function normalise(g: GroupResult, v: number): number {
  const d = normaliser(g);
  return d === null ? v : v / d;
}
