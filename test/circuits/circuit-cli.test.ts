import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { CircuitResult } from "../../src/circuits/find-circuit.ts";
import { EdgeGraph, edgeLabel, pruneToPaths } from "../../src/circuits/graph.ts";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { loadFixtureModel, referenceJson } from "../helpers/reference.ts";

const tmp = mkdtempSync(join(tmpdir(), "cs-circuit-cli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const P = referenceJson.prompts;
const base = ["circuit", "--model", FIXTURE_DIR, "--answer", P.answer, "--wrong", P.wrong];
for (const [i, c] of P.clean.entries()) base.push("--clean", c, "--corrupted", P.corrupted[i]);

type CircuitJson = CircuitResult;

async function json(args: string[]): Promise<CircuitJson> {
  const r = await runCli([...base, ...args, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const graph = new EdgeGraph({ nLayers: 3, nHeads: 4 });

test("circuit --top-n: the JSON shape, baselines from the model, the pruned top-n, the exact check", async () => {
  const r = await json([
    "--method",
    "eap",
    "--top-n",
    "24",
    "--svg",
    join(tmp, "c.svg"),
    "--html",
    join(tmp, "c.html"),
  ]);
  assert.equal(r.nodes.length, graph.nodes.length + 1);
  assert.equal(r.edges.length, graph.nEdges);
  for (let i = 1; i < r.edges.length; i++)
    assert.ok(Math.abs(r.edges[i - 1].score) >= Math.abs(r.edges[i].score));
  const e = r.edges.find((x) => x.name === "input->a1.h2<k>");
  assert.deepEqual(e && [e.parent, e.child, e.input], ["input", "a1.h2", "k"]);
  // Baselines: the model's own logit difference, batch mean.
  const model = loadFixtureModel({ backend: "reference" });
  const [a, w] = [model.toSingleToken(P.answer), model.toSingleToken(P.wrong)];
  const diff = (tokens: number[][]) => {
    const l = model.run(tokens, { logits: "last" });
    const V = model.cfg.dVocab;
    return tokens.reduce((s, _, b) => s + l.data[b * V + a] - l.data[b * V + w], 0) / tokens.length;
  };
  assert.ok(Math.abs(r.baseline.clean - diff(P.clean_tokens)) < 1e-4);
  assert.ok(Math.abs(r.baseline.corrupted - diff(P.corrupted_tokens)) < 1e-4);
  // The circuit: the top 24 by |score|, pruned to paths (pruning it again changes nothing).
  const top = new Set(r.edges.slice(0, 24).map((x) => x.name));
  assert.ok(r.circuit.edges.every((n) => top.has(n)));
  const idx = r.circuit.edges.map((n) => graph.edgeIndex(n));
  assert.deepEqual(pruneToPaths(graph, idx), idx);
  const expected = pruneToPaths(
    graph,
    r.edges.slice(0, 24).map((x) => graph.edgeIndex(x.name)),
  ).sort((x, y) => x - y);
  assert.deepEqual(idx, expected);
  assert.ok(
    Math.abs(
      r.circuit.normalized -
        (r.circuit.metric - r.baseline.corrupted) / (r.baseline.clean - r.baseline.corrupted),
    ) < 1e-9,
  );
  // Exact check on the top 20 (default): recorded on the edges too.
  assert.equal(r.comparison?.edges.length, 20);
  for (const c of r.comparison?.edges ?? [])
    assert.equal(r.edges.find((x) => x.name === c.name)?.exact, c.exact);
  // Figures: every circuit edge drawn once; the page carries the heads' attention patterns.
  const svg = readFileSync(join(tmp, "c.svg"), "utf8");
  assert.equal((svg.match(/class="cs-edge"/g) ?? []).length, r.circuit.edges.length);
  for (const n of r.circuit.edges)
    assert.ok(svg.includes(`data-edge="${edgeLabel(n).replace(/>/g, "&gt;").replace(/</g, "&lt;")}"`), n);
  const html = readFileSync(join(tmp, "c.html"), "utf8");
  assert.match(html, /id="cs-heads"/);
  assert.match(html, /Faithfulness/);
});

test("circuit's text, SVG and page name heads L1H2 and MLPs MLP1, never a1.h2 / m1 (the JSON keeps the edge graph's names, which --keep reads)", async () => {
  const [svgPath, htmlPath] = [join(tmp, "names.svg"), join(tmp, "names.html")];
  const r = await runCli([...base, "--method", "eap", "--top-n", "40", "--svg", svgPath, "--html", htmlPath]);
  assert.equal(r.code, 0, r.stderr);
  const outputs = {
    text: r.stdout,
    svg: readFileSync(svgPath, "utf8"),
    html: readFileSync(htmlPath, "utf8"),
  };
  for (const [what, out] of Object.entries(outputs)) {
    assert.doesNotMatch(out, /a\d+\.h\d+/, what);
    assert.doesNotMatch(out, /\bm\d+(?=[-<\s,"]|&lt;)/, what);
    assert.match(out, /L\d+H\d+/, `${what} names heads`);
  }
  // The top edges listed in the text carry the report's names (e.g. "input->L1H2<k>").
  assert.match(
    r.stdout,
    /Top edges by \|score\|:\n {2}(input|L\d+H\d+|MLP\d+)->(L\d+H\d+<[qkv]>|MLP\d+|logits) /,
  );
  // The page's attention patterns are keyed by the name its nodes carry.
  const heads = JSON.parse(
    /<script type="application\/json" id="cs-heads">([^<]*)<\/script>/.exec(outputs.html)?.[1] ?? "{}",
  );
  const nodes = [...outputs.html.matchAll(/class="cs-node" data-node="(L\d+H\d+)"/g)].map((m) => m[1]);
  assert.ok(nodes.length > 0);
  assert.deepEqual(Object.keys(heads).sort(), [...new Set(nodes)].sort());
});

test("circuit --keep evaluates a given circuit: the found circuit's metric, none = corrupted, all = clean", async () => {
  const found = await json([
    "--method",
    "eap-ig",
    "--ig-steps",
    "3",
    "--faithfulness",
    "0.8",
    "--compare-top",
    "0",
  ]);
  assert.equal(found.circuit.target, 0.8);
  assert.ok(found.circuit.reached, "the fixture's circuit reaches 0.8");
  assert.ok(found.circuit.normalized >= 0.8);
  // The search's boundary: one edge fewer in the ranking does not reach the target.
  const below = found.faithfulness.find((p) => p.topN === found.circuit.topN - 1);
  if (found.circuit.topN > 1) assert.ok(below && below.normalized < 0.8, JSON.stringify(below));
  const keep = async (names: string[]) => {
    const f = join(tmp, `keep-${names.length}.json`);
    writeFileSync(f, JSON.stringify(names));
    const r = await runCli([...base, "--keep", f, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { metric: number; normalized: number; clean: number; corrupted: number };
  };
  const same = await keep(found.circuit.edges);
  assert.ok(Math.abs(same.metric - found.circuit.metric) < 1e-5);
  const none = await keep([]);
  assert.ok(Math.abs(none.normalized) < 1e-4);
  const every = await keep(found.edges.map((e) => e.name));
  assert.ok(Math.abs(every.normalized - 1) < 1e-4);
});

test("circuit reads the study's pairs file (JSONL) and filters a group", async () => {
  const f = join(tmp, "pairs.jsonl");
  const lines = P.clean.map((c, i) =>
    JSON.stringify({ clean: c, corrupted: P.corrupted[i], answer: P.answer, wrong: P.wrong, group: `g${i}` }),
  );
  writeFileSync(f, `${lines.join("\n")}\n`);
  const r = await runCli([
    "circuit",
    "--model",
    FIXTURE_DIR,
    "--prompts",
    f,
    "--group",
    "g1",
    "--top-n",
    "5",
    "--json",
    "--compare-top",
    "0",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const one = await runCli([
    "circuit",
    "--model",
    FIXTURE_DIR,
    "--clean",
    P.clean[1],
    "--corrupted",
    P.corrupted[1],
    "--answer",
    P.answer,
    "--wrong",
    P.wrong,
    "--top-n",
    "5",
    "--json",
    "--compare-top",
    "0",
  ]);
  assert.deepEqual(JSON.parse(r.stdout).baseline, JSON.parse(one.stdout).baseline);
});

test("bad input: a clear error and a non-zero exit, before any work", async () => {
  const cases: [string[], RegExp][] = [
    [[...base, "--method", "acdc"], /Unknown --method "acdc"/],
    [[...base, "--top-n", "5", "--faithfulness", "0.8"], /not both/],
    [
      [
        "circuit",
        "--model",
        FIXTURE_DIR,
        "--clean",
        "We're here",
        "--corrupted",
        "We are not here at all",
        "--answer",
        "'re",
        "--wrong",
        " are",
      ],
      /same token length|token/,
    ],
    [[...base, "--html", join(tmp, "no-such-dir", "c.html")], /does not exist/],
  ];
  cases.push([
    [
      "circuit",
      "--model",
      FIXTURE_DIR,
      "--clean",
      P.clean[0],
      "--corrupted",
      P.clean[0],
      "--answer",
      P.answer,
      "--wrong",
      P.wrong,
    ],
    /identical|nearly\) equal/, // the pair check now catches identical prompts first
  ]);
  const badKeep = join(tmp, "bad-keep.json");
  writeFileSync(badKeep, JSON.stringify(["a2.h0->a1.h0<q>"]));
  cases.push([[...base, "--keep", badKeep], /not an edge/]);
  for (const [args, pattern] of cases) {
    const r = await runCli(args);
    assert.notEqual(r.code, 0, args.join(" "));
    assert.match(r.stderr, /circuitscope: error:/);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("Ctrl-C during a long search: exit 130, a message, and no output file", async () => {
  const { spawn } = await import("node:child_process");
  const { existsSync } = await import("node:fs");
  const { REPO_ROOT } = await import("../helpers/fixture.ts");
  const out = join(tmp, "interrupted.json");
  const child = spawn(
    process.execPath,
    [
      join(REPO_ROOT, "bin/circuitscope.js"),
      "circuit",
      "--model",
      "stories260k",
      "--prompts",
      join(REPO_ROOT, "docs/circuits-gender-pairs.jsonl"),
      "--method",
      "exact", // 46 pairs x 2,461 edges: minutes, so the signal lands mid-search
      "--out",
      out,
    ],
    // Progress lines (as in a batch job's log): the first says the search has started, inside its Ctrl-C handling.
    {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, CIRCUITSCOPE_PROGRESS: "lines" },
    },
  );
  let stderr = "";
  const closed = new Promise<number | null>((r) => child.on("close", (c) => r(c)));
  try {
    const started = new Promise<void>((resolve) =>
      child.stderr.on("data", (d) => {
        stderr += d;
        if (/circuit: .* 0\/\d+ runs/.test(stderr)) resolve();
      }),
    );
    // Exiting before the search starts fails here instead of hanging the suite.
    const first = await Promise.race([started.then(() => "started" as const), closed]);
    assert.equal(first, "started", stderr);
    child.kill("SIGINT");
    assert.equal(await closed, 130, stderr);
    assert.match(stderr, /stopped \(Ctrl-C\); no output written/);
    assert.equal(existsSync(out), false);
  } finally {
    child.kill("SIGKILL");
  }
});
