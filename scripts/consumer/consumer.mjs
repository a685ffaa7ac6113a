// Run by scripts/consumer-test.sh inside a fresh project that installed the packed tarball: uses the
// package only through its public entry points, as a user would.
import assert from "node:assert/strict";
import { activationPatching, HookedTransformer, packageInfo } from "circuitscope";
import { heatmap } from "circuitscope/viz";

const modelName = process.env.CONSUMER_MODEL ?? "stories260k";
const model = await HookedTransformer.fromPretrained(modelName, { backend: "reference" });

// A forward pass: processed logits are centred over the vocabulary (TransformerLens' fold/centre defaults).
const clean = "Then Lily went to the park. One day,";
const corrupted = "Then Tim went to the park. One day,";
const { logits, cache } = model.runWithCache([clean]);
const [, nPos, dVocab] = logits.shape;
assert.equal(dVocab, model.cfg.dVocab);
const last = logits.data.subarray((nPos - 1) * dVocab, nPos * dVocab);
const meanLogit = last.reduce((s, x) => s + x, 0) / dVocab;
assert.ok(Math.abs(meanLogit) < 1e-3, `processed logits should have mean 0, got ${meanLogit}`);
assert.ok(cache.get("resid_post", model.cfg.nLayers - 1), "the cache holds the last residual");

// A patching sweep: the prompts differ at one position, so restoring the clean residual there before
// block 0 restores the clean run exactly (fraction restored = 1), and other positions at layer 0 do nothing.
const answer = model.toSingleToken(" she");
const wrong = model.toSingleToken(" he");
const result = await activationPatching(model, {
  clean: [clean],
  corrupted: [corrupted],
  answers: { answer, wrong },
  target: { kind: "resid_pre" },
});
const tokensClean = model.toTokens(clean);
const tokensCorrupted = model.toTokens(corrupted);
const differing = tokensClean.findIndex((t, i) => t !== tokensCorrupted[i]);
const posAxis = result.shape[1];
assert.ok(Math.abs(result.values[differing] - 1) < 1e-4, `layer 0 at the differing position restores all`);
for (let p = 0; p < posAxis; p++) {
  if (p !== differing) assert.ok(Math.abs(result.values[p]) < 1e-4, `layer 0, position ${p} restores nothing`);
}
const figure = heatmap({
  title: "resid_pre",
  rowLabels: ["L0"],
  colLabels: result.labels[1] ?? [...Array(posAxis).keys()].map(String),
  values: [[...result.values.subarray(0, posAxis)]],
});
assert.ok(figure, "viz subpath builds a figure");
console.log(
  JSON.stringify({ version: packageInfo().version, model: modelName, clean: result.clean, corrupted: result.corrupted }),
);
