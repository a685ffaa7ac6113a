/**
 * SAE features (when the spec names an SAE): which features carry the effect. Attribution patching
 * estimates every feature at every position of every pair from one forward and backward pass per pair
 * (the `features` patch target); per feature the estimates are summed over positions (the first-order
 * estimate of patching it at every position) and averaged over prompts; the top ones are then patched
 * exactly at every position. Per group, on the focus group and the spec's mechanism groups, normalised as
 * the group's other patching numbers. The named features get their pages (src/neurons/feature-page.ts)
 * written into the report.
 */
import { formatMeanCi } from "../../analysis/stats.ts";
import { featurePageData } from "../../neurons/feature-page.ts";
import { NeuronIndex } from "../../neurons/neuron-index.ts";
import { activationPatching } from "../../patching/activation-patching.ts";
import { attributionPatching } from "../../patching/attribution-patching.ts";
import { bundledFeatureIndexDir } from "../../sae/bundled-saes.ts";
import { checkSaeFitsModel } from "../../sae/hook-width.ts";
import type { Sae } from "../../sae/sae.ts";
import { loadSaeLensDir } from "../../sae/saelens-dir.ts";
import { formatToken } from "../../tokenizer/format-token.ts";
import { barChart } from "../../viz/charts/bar-chart.ts";
import { groupOf, normalise, type PreparedGroup, type StudyContext } from "../context.ts";
import { excludesZero, f2, pct } from "../format.ts";
import { effectsBySite } from "../pair-measures.ts";
import type { Finding, GroupResult, StudyFeaturePage, StudyResults } from "../results.ts";
import type { Stage, StageSlice, StudySection } from "../stage.ts";
import { summarizeSample } from "../summaries.ts";
import { patchUnit } from "./patching.ts";

/** A feature "carries" the effect when patching it at every position restores at least this much of the gap. */
export const FEATURE_MATTERS = 0.1;

type Slice = StageSlice & { groups: Map<string, Pick<GroupResult, "features">> };
type GroupFeatures = NonNullable<GroupResult["features"]>;

export const featuresStage: Stage = {
  name: "SAE features",
  async run(ctx, res): Promise<Slice> {
    const groups: Slice["groups"] = new Map();
    const spec = ctx.spec.features;
    if (!spec) return { groups };
    const sae = loadSae(ctx, spec.sae);
    if (!sae) return { groups };
    for (const g of ctx.mechanismGroups(res))
      groups.set(g.name, { features: await groupFeatures(ctx, res, g, sae) });
    // Pages of the features with the largest exact effect in any group, and of every feature a finding names.
    const best = new Map<number, number>();
    const named = new Set<number>();
    for (const { features } of groups.values()) {
      for (const t of features!.top)
        best.set(t.feature, Math.max(best.get(t.feature) ?? 0, Math.abs(t.exact.mean)));
      for (const t of namedFeatures(features!)) named.add(t.feature);
    }
    const largest = [...best]
      .sort((a, b) => b[1] - a[1] || a[0] - b[0])
      .slice(0, spec.pages)
      .map(([feature]) => feature);
    const paged = [...largest, ...[...named].filter((f) => !largest.includes(f)).sort((a, b) => a - b)];
    const index = openFeatureIndex(ctx, spec.index ?? bundledFeatureIndexDir(spec.sae));
    const examples = ctx.focus.pairs.slice(0, 1).map((p) => p.clean);
    const featurePages = paged.map(
      (feature): StudyFeaturePage => ({
        feature,
        file: `features/feature-${feature}.html`,
        page: featurePageData(ctx.model, sae, feature, {
          index,
          modelName: ctx.modelName,
          saeName: spec.sae,
          text: examples[0],
          logitTokens: 8,
        }),
      }),
    );
    if (!index)
      ctx.omitted.push(
        "top activating examples on the feature pages: no feature index of the SAE (circuitscope index --sae builds one)",
      );
    sae.dispose();
    return { groups, featurePages };
  },
  sections(res) {
    const withFeatures = res.groups.filter((g) => g.features?.top.length);
    if (!withFeatures.length) return [];
    const spec = res.study.features;
    const hook = withFeatures[0].features!.hook;
    const pages = new Set((res.featurePages ?? []).map((p) => p.feature));
    const indexed = res.featurePages?.find((p) => p.page.index)?.page.index;
    const section: StudySection = {
      heading: "SAE features",
      text:
        `Features of the SAE at ${hook} (${spec?.sae ?? "the spec's SAE"}; trained on ${spec?.trainedOn ?? "unstated data"}). ` +
        "Attribution patching estimated every feature at every position of every pair (the SAE spliced in with its error term, so the runs are the model's own); per feature the estimates are summed over positions and averaged over prompts, " +
        "and the largest were patched exactly at every position (95% bootstrap intervals), per group, on the groups whose mechanism the study measures.\n\n" +
        `Feature pages (the tokens each feature's decoder direction raises and lowers, its activation on a study prompt${indexed ? `; its top examples, density and histogram over ${indexed.corpus}, from the feature index ${indexed.dir}` : ""}): ${[...pages].map((f) => `features/feature-${f}.html`).join(", ")}.`,
      figures: [],
      tables: withFeatures.map((g) => ({
        caption: `${g.name}: the top ${g.features!.top.length} features by |attribution estimate|, patched exactly at every position (${patchUnit(g)}).`,
        columns: ["feature", "exact", "95% interval", "estimate", "attribution peaks at", "page"],
        rows: g.features!.top.map((t) => [
          `F${t.feature}`,
          f2(t.exact.mean),
          `[${f2(t.exact.ciLow)}, ${f2(t.exact.ciHigh)}]`,
          f2(t.attribution.mean),
          `${formatToken(t.peakToken.token)} (${t.peakToken.prompts} of ${t.exact.n} prompts)`,
          pages.has(t.feature) ? `features/feature-${t.feature}.html` : "",
        ]),
      })),
    };
    const focus = res.groups.find((g) => g.name === res.focusGroup)?.features;
    if (focus?.top.length) {
      const top = [...focus.top].sort((a, b) => Math.abs(b.exact.mean) - Math.abs(a.exact.mean));
      section.figures.push({
        name: "focus-features",
        figure: barChart({
          title: `SAE features at ${hook} by exact patching at every position (${res.focusGroup})`,
          labels: top.map((t) => `F${t.feature}`),
          values: top.map((t) => t.exact.mean),
          errors: { lower: top.map((t) => t.exact.ciLow), upper: top.map((t) => t.exact.ciHigh) },
          horizontal: true,
          labelTitle: "feature (sorted by |exact|)",
          valueTitle: `${patchUnit(groupOf(res, res.focusGroup))} (exact)`,
        }),
        caption: `The ${top.length} features of ${res.focusGroup} with the largest attribution estimates, patched exactly at every position (95% bootstrap intervals over ${top[0].exact.n} prompts): ${top
          .slice(0, 3)
          .map((t) => `F${t.feature} ${formatMeanCi(t.exact)} (estimate ${f2(t.attribution.mean)})`)
          .join(", ")}.`,
      });
    }
    return [section];
  },
  findings(res) {
    return res.groups.filter((g) => g.features?.top.length).map((g) => featureFinding(g, res));
  },
};

function featureFinding(g: GroupResult, res: StudyResults): Finding {
  const f = g.features!;
  const names = namedFeatures(f);
  const pages = new Set((res.featurePages ?? []).map((p) => p.feature));
  const named = (t: TopFeature) =>
    `F${t.feature} ${formatMeanCi(t.exact)} (attribution peaks at ${JSON.stringify(t.peakToken.token)} in ${t.peakToken.prompts} of ${t.exact.n} prompts${pages.has(t.feature) ? `; page features/feature-${t.feature}.html` : ""})`;
  return {
    groups: [g.name],
    text: names.some(carriesEffect)
      ? `In ${g.name}, the SAE features at ${f.hook} whose exact patching at every position restores at least ${pct(FEATURE_MATTERS)} of the gap (interval excluding 0) are ${names.map(named).join(", ")}.`
      : `In ${g.name}, no SAE feature at ${f.hook} among the ${f.top.length} with the largest estimates restores at least ${pct(FEATURE_MATTERS)} of the gap with an interval excluding 0 (largest: ${named(names[0])}).`,
    evidence: Object.fromEntries([
      ...f.top.map((t) => [
        `groups[${g.name}].features.top[F${t.feature}].exact`,
        `${t.exact.mean} [${t.exact.ciLow}, ${t.exact.ciHigh}]`,
      ]),
      ["threshold", FEATURE_MATTERS],
    ]),
  };
}

type TopFeature = GroupFeatures["top"][number];
const byExact = (a: TopFeature, b: TopFeature) => Math.abs(b.exact.mean) - Math.abs(a.exact.mean);

/** The features a group's finding names: those carrying the effect, else the largest by exact patching. */
function namedFeatures(f: GroupFeatures): TopFeature[] {
  const clear = f.top.filter(carriesEffect).sort(byExact);
  return clear.length ? clear : [...f.top].sort(byExact).slice(0, 1);
}

/** A feature carrying the effect: exact patching at every position restores FEATURE_MATTERS of the gap, its interval excluding 0. */
function carriesEffect(t: TopFeature): boolean {
  return Math.abs(t.exact.mean) >= FEATURE_MATTERS && excludesZero(t.exact);
}

/** The feature index for the pages; null (with the reason in meta.omitted) when there is none or it does not open. */
function openFeatureIndex(ctx: StudyContext, dir: string | null): NeuronIndex | null {
  if (!dir) return null;
  try {
    return NeuronIndex.open(dir);
  } catch (e) {
    ctx.omitted.push(`the feature index ${dir} (${(e as Error).message})`);
    return null;
  }
}

/** The spec's SAE, loaded for the model; null (with the reason in meta.omitted) when it does not fit. */
function loadSae(ctx: StudyContext, dir: string): Sae | null {
  try {
    const sae = loadSaeLensDir(dir, { kernels: ctx.model.kernels });
    checkSaeFitsModel(sae.cfg, ctx.model.cfg);
    return sae;
  } catch (e) {
    ctx.omitted.push(`SAE features: the SAE ${dir} does not fit this model (${(e as Error).message})`);
    return null;
  }
}

async function groupFeatures(
  ctx: StudyContext,
  res: StudyResults,
  g: PreparedGroup,
  sae: Sae,
): Promise<GroupFeatures> {
  const gr = groupOf(res, g.name);
  const pairs = g.tokens;
  const sweep = {
    clean: pairs.clean,
    corrupted: pairs.corrupted,
    answers: { answer: pairs.answer, wrong: pairs.wrong },
  };
  const B = pairs.clean.length;
  const dSae = sae.cfg.dSae;
  // [pos, feature] estimates per prompt; summed over positions per feature.
  const tick = ctx.work(2 * B);
  const estimate = effectsBySite(
    attributionPatching(ctx.model, { ...sweep, target: { kind: "features", sae } }),
  );
  tick(B);
  const nPos = estimate.length / dSae;
  const perFeature = Array.from({ length: dSae }, (_, f) =>
    Array.from({ length: B }, (_, b) => {
      let s = 0;
      for (let p = 0; p < nPos; p++) s += estimate[p * dSae + f][b];
      return s;
    }),
  );
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  const spec = ctx.spec.features!;
  const top = [...perFeature.keys()]
    .sort((a, b) => Math.abs(mean(perFeature[b])) - Math.abs(mean(perFeature[a])) || a - b)
    .slice(0, spec.top);
  const exact = effectsBySite(
    await activationPatching(ctx.model, { ...sweep, target: { kind: "features", sae, features: top } }),
  );
  tick(B);
  return {
    hook: sae.cfg.hookName,
    top: top.map((feature, k) => ({
      feature,
      attribution: summarizeSample(
        perFeature[feature].map((v) => normalise(gr, v)),
        ctx.boot(9600 + 10 * g.index + k),
      ),
      exact: summarizeSample(
        exact[k].map((v) => normalise(gr, v)),
        ctx.boot(9700 + 10 * g.index + k),
      ),
      peakToken: peakToken(ctx, g, estimate, feature, dSae),
    })),
  };
}

/** The clean token at which a feature's estimate is largest, most often over the prompts, and how often. */
function peakToken(
  ctx: StudyContext,
  g: PreparedGroup,
  estimate: number[][],
  feature: number,
  dSae: number,
): { token: string; prompts: number } {
  const counts = new Map<string, number>();
  g.tokens.clean.forEach((toks, b) => {
    let best = 0;
    for (let p = 1; p < toks.length; p++)
      if (Math.abs(estimate[p * dSae + feature][b]) > Math.abs(estimate[best * dSae + feature][b])) best = p;
    const token = ctx.model.toStrTokens([toks[best]])[0];
    counts.set(token, (counts.get(token) ?? 0) + 1);
  });
  const [token, prompts] = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
  return { token, prompts };
}
