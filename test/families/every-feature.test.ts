/**
 * Every feature on every model family (issue 31 point 6), each checked against an independent computation
 * or a property: gradients against finite differences of the forward pass, every patching target's fast path
 * against one full forward per patch, attribution patching exact where the metric is linear in the patch,
 * edge circuits (EAP, EAP-IG, exact) against the plain forward and the mask's finite differences, SAEs
 * spliced with the error term leaving the output unchanged, the neuron index's examples recomputed and its
 * shards merged byte for byte. The families are test/helpers/family-checkpoints.ts'
 * FAMILY_CASES (one line adds one); each is loaded twice, processed and raw (on the two kernel backends).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import { findCircuit } from "../../src/circuits/find-circuit.ts";
import type { DocumentSource } from "../../src/corpus/sources.ts";
import { runWithGradients } from "../../src/gradients/backward.ts";
import { logitDiffMetric } from "../../src/gradients/logit-metric.ts";
import { HookedTransformer, type LoadOptions } from "../../src/model/hooked-transformer.ts";
import type { HookSpec } from "../../src/model/hooks.ts";
import { buildIndex } from "../../src/neurons/build-index.ts";
import { mergeIndexes } from "../../src/neurons/merge-indexes.ts";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { compareAttribution } from "../../src/patching/attribution-compare.ts";
import { type PatchTarget, TARGET_NAMES, targetFromName } from "../../src/patching/targets.ts";
import { saeHookName, saeSplice } from "../../src/sae/attach.ts";
import { Sae } from "../../src/sae/sae.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { FAMILY_CASES, writeFamilyCheckpoint } from "../helpers/family-checkpoints.ts";
import { checkEveryHookGradient } from "../helpers/gradient-check.ts";
import { storeFiles } from "../helpers/index-files.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";
import { maxAbsDiff } from "../helpers/reference.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-every-feature-"));
after(() => rmSync(root, { recursive: true, force: true }));

// Ids below 512, valid in every family's vocabulary. Pair 0 differs first at position 3, pair 1 at 1.
const clean = [
  [1, 17, 200, 45, 9, 88, 120, 3],
  [1, 250, 2, 77, 5, 6, 7, 8],
];
const corrupted = [
  [1, 17, 200, 301, 9, 88, 120, 3],
  [1, 30, 2, 77, 5, 6, 7, 8],
];
const answers = { answer: [11, 40], wrong: [22, 11] };

/** Mean over prompts of logit(answer) − logit(wrong) at the last position, from a plain forward. */
function forwardMetric(model: HookedTransformer, tokens: number[][], fwdHooks: HookSpec[] = []): number {
  const V = model.cfg.dVocab;
  const logits = model.run(tokens, { logits: "last", fwdHooks }).data;
  let sum = 0;
  tokens.forEach((_, b) => {
    sum += logits[b * V + answers.answer[b]] - logits[b * V + answers.wrong[b]];
  });
  return sum / tokens.length;
}

/** Each family runs processed on the reference kernels and raw (no weight processing) on the ONNX ones. */
const LOADS: { name: string; opts: LoadOptions }[] = [
  { name: "processed, reference kernels", opts: { backend: "reference" } },
  { name: "raw, ONNX kernels", opts: { backend: "onnx", processing: false } },
];

FAMILY_CASES.forEach((family, i) => {
  const { dir } = writeFamilyCheckpoint(root, i);
  LOADS.forEach((load, j) => {
    describe(`${family.name} (${load.name})`, () => {
      // Converting consumes a checkpoint's tensors, so each model loads its own.
      const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), load.opts);
      after(() => model.dispose());
      const { nLayers: L, dModel: D, nHeads: H, dHead: dh, dMlp } = model.cfg;

      test("gradients: every hook's backward = central finite differences of the forward pass", () => {
        const tokens = [clean[0]];
        const [a, w] = [answers.answer[0], answers.wrong[0]];
        const run = runWithGradients(model, tokens, logitDiffMetric(a, w));
        // float32 forward: a step large enough that rounding (~1e-6 / 2h) stays below the tolerance, and
        // Richardson's combination so that the h² term (large on small activations such as a norm's scale)
        // cancels.
        const checked = checkEveryHookGradient(
          run,
          (hook, dirv, h) =>
            forwardMetric(model, tokens, [
              [
                hook,
                (t: Tensor) => {
                  for (let k = 0; k < t.data.length; k++) t.data[k] += h * dirv[k];
                },
              ],
            ]),
          { h: 1e-2, unit: true, richardson: true, abs: 2e-3, rel: 2e-2 },
        );
        assert.ok(checked > 3 + 15 * L, `${checked} hooks checked`);
      });

      const base = { clean, corrupted, answers, chunkSize: 5 };
      // The features target patches an SAE's features: a small random SAE on the last block's input.
      const targetSae = new Sae({
        cfg: saeConfigFor({
          architecture: "standard",
          dIn: D,
          dSae: 16,
          hookName: `blocks.${L - 1}.hook_resid_pre`,
        }),
        weights: randomSaeWeights({ architecture: "standard", dIn: D, dSae: 16, seed: 7, encScale: 0.3 }),
        kernels: referenceKernels,
      });
      const targets: [string, PatchTarget][] = [
        ...TARGET_NAMES.map((name): [string, PatchTarget] => [
          name,
          targetFromName(name, { layer: L - 1, sae: targetSae }),
        ]),
        ["head_pattern by position", { kind: "head", component: "pattern", perPosition: true }],
        [
          "sites (a query head, a neuron's pre-activation, a position of resid_mid)",
          {
            kind: "sites",
            sites: [
              { hook: `blocks.${L - 1}.attn.hook_q`, selectors: [[null, 1, null]] },
              { hook: "blocks.0.mlp.hook_pre", selectors: [[null, 3]] },
              { hook: "blocks.0.hook_resid_mid", selectors: [[3, null]] },
            ],
          },
        ],
      ];
      for (const [name, target] of targets) {
        test(`patching ${name}: the fast exact path = one full forward per patch`, async () => {
          const fast = await activationPatching(model, { ...base, target });
          const slow = await activationPatching(model, { ...base, target, method: "straightforward" });
          assert.deepEqual(fast.shape, slow.shape);
          const d = maxAbsDiff(Float32Array.from(fast.perPrompt.raw), Float32Array.from(slow.perPrompt.raw));
          assert.ok(d < 1e-4, `per-prompt logit differences differ by ${d}`);
          assert.ok(
            fast.perPrompt.raw.some((x) => Math.abs(x - fast.perPrompt.raw[0]) > 1e-3),
            "patches move the metric differently",
          );
        });
      }

      // A final soft-cap bends the logits: the metric is then not linear in ln_final's output.
      const linear =
        model.cfg.finalSoftCap == null ? false : "the final soft-cap makes the metric non-linear";
      test("attribution patching = exact patching where the metric is linear in the patch (ln_final's output)", {
        skip: linear,
      }, async () => {
        const n = clean[0].length;
        const indexSets = [];
        for (let pos = n - 3; pos < n; pos++)
          for (let c = 0; c < 4; c++) indexSets.push([[pos, 8 * c] as const, [pos, 8 * c + 5] as const]);
        const [cmp] = await compareAttribution(model, {
          clean,
          corrupted,
          answers,
          targets: [{ kind: "custom", hook: "ln_final.hook_normalized", indexSets }],
        });
        const d = maxAbsDiff(Float32Array.from(cmp.estimate.values), Float32Array.from(cmp.exact.values));
        assert.ok(d < 1e-4, `estimate and exact differ by ${d}`);
        assert.ok(
          cmp.exact.values.some((v) => Math.abs(v) > 0.01),
          "the final-position sets move the metric",
        );
      });

      describe("edge circuits", () => {
        const pairs = { clean, corrupted, answer: answers.answer, wrong: answers.wrong };
        const task = new CircuitTask(model, pairs);
        const { graph } = task;
        const all = () => new Float32Array(graph.nEdges).fill(1);

        test("every edge kept = the plain clean forward, none kept = the plain corrupted forward", () => {
          const c = forwardMetric(model, clean);
          const x = forwardMetric(model, corrupted);
          assert.ok(Math.abs(c - x) > 0.05, `the pairs must differ: ${c} vs ${x}`);
          assert.ok(Math.abs(task.evaluate(all()) - c) < 1e-4, `${task.evaluate(all())} vs ${c}`);
          assert.ok(Math.abs(task.evaluate(new Float32Array(graph.nEdges)) - x) < 1e-4);
        });

        test("exact: each score = the full masked pass with that edge removed, minus the clean metric", async () => {
          const r = await findCircuit(task, { method: "exact", topN: 5, compareTop: 0 });
          assert.equal(r.edges.length, graph.nEdges);
          for (const e of r.edges.slice(0, 4).concat(r.edges.slice(-2))) {
            const mask = all();
            mask[graph.edgeIndex(e.name)] = 0;
            const want = task.evaluate(mask) - task.baseline.clean;
            assert.ok(Math.abs(e.score - want) < 1e-4, `${e.name}: ${e.score} vs ${want}`);
          }
          const kept = new Float32Array(graph.nEdges);
          for (const n of r.circuit.edges) kept[graph.edgeIndex(n)] = 1;
          assert.ok(Math.abs(r.circuit.metric - task.evaluate(kept)) < 1e-4, "the circuit's metric");
          assert.ok(Math.abs(r.edges[0].score) > 1e-3, "some edge matters");
        });

        test("EAP = the derivative of the masked metric; EAP-IG is complete on the input's edges; its check holds exact scores", async () => {
          const eap = await findCircuit(task, { method: "eap", topN: 5, compareTop: 0 });
          const eps = 1e-2;
          for (const e of eap.edges.slice(0, 5)) {
            const mask = all();
            const k = graph.edgeIndex(e.name);
            mask[k] = 1 - eps;
            const down = task.evaluate(mask);
            mask[k] = 1 + eps;
            const fd = (down - task.evaluate(mask)) / (2 * eps);
            const tol = 1e-3 * Math.abs(eap.edges[0].score) + 2e-3 * Math.abs(e.score);
            assert.ok(Math.abs(fd - e.score) < tol, `${e.name}: finite difference ${fd} vs EAP ${e.score}`);
          }
          // Integrated gradients' completeness: every child reads the input node, so its edges' scores add up
          // to ∫ dmetric/dinput · (corrupted − clean) along the interpolated inputs = corrupted − clean, up to
          // the Riemann sum's O(1 / steps).
          const ig64 = await task.gradientScores(64);
          let fromInput = 0;
          for (let e = 0; e < graph.nEdges; e++) if (graph.edge(e).parent === "input") fromInput += ig64[e];
          const span = task.baseline.corrupted - task.baseline.clean;
          assert.ok(
            Math.abs(fromInput - span) < 0.05 * Math.abs(span),
            `input edges sum to ${fromInput}, not ${span}`,
          );
          const ig = await findCircuit(task, { method: "eap-ig", igSteps: 4, topN: 5, compareTop: 6 });
          assert.equal(ig.igSteps, 4);
          assert.ok(ig.edges.every((e) => Number.isFinite(e.score)));
          const checked = ig.comparison!.edges;
          const exact = await task.exactScores(checked.map((e) => graph.edgeIndex(e.name)));
          for (const [k, e] of checked.entries()) assert.ok(Math.abs(e.exact - exact[k]) < 1e-5, e.name);
        });
      });

      const prompt = [clean[0]];
      const plain = model.run(prompt);
      const saeSites = [
        { hook: "blocks.0.hook_resid_pre", dIn: D },
        { hook: `blocks.${L - 1}.attn.hook_z`, dIn: H * dh },
        { hook: "blocks.0.mlp.hook_post", dIn: dMlp },
      ];
      for (const { hook, dIn } of saeSites) {
        test(`an SAE at ${hook}: the error term leaves the output exactly unchanged; without it the logits move`, () => {
          const sae = new Sae({
            cfg: saeConfigFor({ architecture: "standard", dIn, dSae: 48, hookName: hook }),
            weights: randomSaeWeights({ architecture: "standard", dIn, dSae: 48, seed: 5, encScale: 0.3 }),
            kernels: referenceKernels,
          });
          const { logits, cache } = model.runWithCache(prompt, {
            splices: [saeSplice(sae, { useErrorTerm: true })],
          });
          assert.deepEqual(logits!.data, plain.data);
          const post = cache.get(saeHookName(sae, "hook_sae_acts_post"));
          assert.equal(post.size, prompt[0].length * 48);
          assert.ok(
            post.data.some((v) => v > 0),
            "some feature fires",
          );
          const spliced = model.run(prompt, { splices: [saeSplice(sae)] });
          const moved = maxAbsDiff(spliced.data, plain.data);
          assert.ok(moved > 1e-3, `the reconstruction moved the logits by ${moved}`);
        });
      }

      test("neuron index: its top examples are mlp.hook_post recomputed; shards merge into the single run byte for byte", async () => {
        const source: DocumentSource = { name: "tiny", documents: () => TINY_CORPUS };
        const settings = { modelName: family.name, topK: 3, contextLen: 10, batchSize: 2 };
        const single = join(root, `index-${i}-${j}`);
        const { manifest } = await buildIndex(model, source, { ...settings, outDir: single });
        assert.ok(
          manifest?.progress.complete && manifest.progress.contexts >= 4,
          JSON.stringify(manifest?.progress),
        );
        const index = NeuronIndex.open(single);
        for (const [layer, neuron] of [
          [0, 0],
          [L - 1, dMlp - 1],
        ]) {
          const { examples } = index.summary(layer, neuron);
          assert.equal(examples.length, 3);
          for (const ex of examples) {
            const tokens = Array.from(index.contextTokens(ex.contextId));
            const { cache } = model.runWithCache([tokens], {
              namesFilter: [`blocks.${layer}.mlp.hook_post`],
            });
            const want = cache.get(`blocks.${layer}.mlp.hook_post`).data[ex.position * dMlp + neuron];
            assert.ok(Math.abs(ex.value - want) < 1e-4, `L${layer}N${neuron}: ${ex.value} vs ${want}`);
          }
        }
        const shards = [0, 1].map((k) => join(root, `index-${i}-${j}-shard-${k}`));
        for (const [k, outDir] of shards.entries())
          await buildIndex(model, source, { ...settings, outDir, shard: { index: k, count: 2 } });
        const merged = join(root, `index-${i}-${j}-merged`);
        mergeIndexes([shards[1], shards[0]], merged);
        assert.deepEqual(storeFiles(merged), storeFiles(single));
      });
    });
  });
});

const TINY_CORPUS = [
  "Lily was happy because she had a new toy.",
  "Tim was sad because he lost his ball in the park.",
  "Once upon a time there was a little dog. The dog liked to run.",
  "The sun was hot, so they sat under a big tree and ate apples.",
];
