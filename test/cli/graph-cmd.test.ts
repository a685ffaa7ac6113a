/**
 * `graph` end to end on stories260k with random transcoders: the files it writes hold the same graph the
 * library builds in-process (adjacency, scores, pruned links), and bad input is refused before any work,
 * naming the problem, with nothing written.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { attributeGraph } from "../../src/graphs/attribute-graph.ts";
import { graphNodes } from "../../src/graphs/attribution-graph.ts";
import { graphScores } from "../../src/graphs/prune.ts";
import {
  loadTranscoderSet,
  type TranscoderSet,
  writeTranscoderSet,
} from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { formatValue } from "../../src/viz/color-scale.ts";
import { runCli } from "../helpers/cli.ts";
import { randomTranscoderSet } from "../helpers/random-transcoder.ts";
import { readRawGraph } from "../helpers/raw-graph.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-graph-cmd-"));
after(() => rmSync(root, { recursive: true, force: true }));
const PROMPT = "Once upon a time, there was a little girl";

function randomSet(dModel: number, layers: number): TranscoderSet {
  const jump = (l: number) => l % 2 === 0;
  const skip = (l: number) => l === 3;
  return randomTranscoderSet({ layers, dModel, dTc: 16, seed: 7, jump, skip, modelName: "stories260k" });
}

/** `graph` on stories260k with the prompt and these transcoders, then `extra`. */
function graphArgs(transcoders: string, ...extra: string[]): string[] {
  return ["graph", "--model", "stories260k", "--transcoders", transcoders, "--prompt", PROMPT, ...extra];
}

const tcDir = join(root, "tc");
before(async () => {
  await writeTranscoderSet(tcDir, randomSet(64, 5));
});

test("graph writes --raw, --out and --html holding the library's graph, and --json its scores and targets", async () => {
  const raw = join(root, "raw");
  const out = join(root, "graph.json");
  const html = join(root, "graph.html");
  const r = await runCli(
    graphArgs(
      tcDir,
      "--target",
      " was",
      "--target",
      " a",
      "--raw",
      raw,
      "--out",
      out,
      "--html",
      html,
      "--json",
      "--check",
      "2",
    ),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "", "--json is quiet");
  const json = JSON.parse(r.stdout);

  const model = await HookedTransformer.fromPretrained("stories260k");
  const set = await loadTranscoderSet(tcDir);
  const tokens = model.toTokens(PROMPT);
  const targets = [model.toSingleToken(" was"), model.toSingleToken(" a")];
  const { graph } = await attributeGraph(model, tokens, set, { targets });
  const scores = graphScores(graph);
  assert.equal(json.replacement_score, scores.replacementScore);
  assert.equal(json.completeness_score, scores.completenessScore);
  assert.equal(json.n_features, graph.features.length);
  assert.deepEqual(
    json.targets.map((t: { token: number }) => t.token),
    targets,
  );
  assert.equal(json.check.length, 2);

  const { nodeIds: nodes, adjacency } = readRawGraph(raw);
  assert.deepEqual(
    nodes,
    graphNodes(graph).map((n) => n.node_id),
  );
  assert.deepEqual(adjacency, graph.adjacency);

  const front = JSON.parse(readFileSync(out, "utf8"));
  assert.equal(front.metadata.prompt, PROMPT);
  assert.ok(front.links.length > 0);
  // ids as circuit-tracer's front end writes them can collide (a layer-0 feature 0_{f}_{p} with the error
  // node 0_{layer}_{p}); links between unambiguous ids are checked
  const ids = graphNodes(graph).map((node) => node.node_id);
  const count = new Map<string, number>();
  for (const id of ids) count.set(id, (count.get(id) ?? 0) + 1);
  const index = new Map(ids.map((id, i) => [id, i]));
  const n = nodes.length;
  let checked = 0;
  for (const link of front.links) {
    if (count.get(link.target) !== 1 || count.get(link.source) !== 1) continue;
    const w = graph.adjacency[index.get(link.target)! * n + index.get(link.source)!];
    assert.equal(link.weight, w);
    checked++;
  }
  assert.ok(checked > front.links.length / 2, `${checked} of ${front.links.length} links checked`);
  assert.equal(json.n_kept_nodes, json.kept_nodes.length);
  // the page draws the same front-end object --out wrote, and states the scores
  const page = readFileSync(html, "utf8");
  const embedded = /<script type="application\/json" id="cs-graph-json">([\s\S]*?)<\/script>/.exec(page);
  assert.ok(embedded, "the page embeds the graph JSON");
  const drawn = JSON.parse(embedded[1]);
  assert.deepEqual(drawn.links, front.links);
  assert.deepEqual(drawn.metadata, front.metadata);
  // the page keeps one node per id (the later one, as circuit-tracer's viewer does with their id collision)
  assert.deepEqual(
    new Set(drawn.nodes.map((node: { node_id: string }) => node.node_id)),
    new Set(front.nodes.map((node: { node_id: string }) => node.node_id)),
  );
  assert.ok(page.includes(`completeness ${formatValue(scores.completenessScore)}`));
  model.dispose();
});

test("transcoders of another d_model are refused before the run, naming both widths; nothing is written", async () => {
  const other = join(root, "tc32");
  await writeTranscoderSet(other, randomSet(32, 5));
  const out = join(root, "never.json");
  const r = await runCli(graphArgs(other, "--out", out));
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /d_model 32 but the model's is 64/);
  assert.equal(existsSync(out), false);
});

test("a target that is not one token, and an output path that is a directory, are refused", async () => {
  const r = await runCli(graphArgs(tcDir, "--target", " once upon"));
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--target " once upon"/);
  const dir = join(root, "a-dir");
  mkdirSync(dir);
  const r2 = await runCli(graphArgs(tcDir, "--out", dir));
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /--out .* is a directory/);
  const r3 = await runCli(graphArgs(tcDir, "--node-threshold", "2"));
  assert.notEqual(r3.code, 0);
  assert.match(r3.stderr, /--node-threshold must be a number between 0 and 1/);
  const r4 = await runCli(graphArgs(tcDir, "--feature-pages", join(root, "pages")));
  assert.notEqual(r4.code, 0);
  assert.match(r4.stderr, /add --html FILE/);
});
