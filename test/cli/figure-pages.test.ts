/**
 * The CLI's pages state their inputs and draw what they say (issue #17 points 3, 6, 7, 10): patch.html,
 * head_all's shared-scale panels, --method compare --html/--out, attr.html with intervals, ignored flags.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { fixturePatchArgs, referenceJson } from "../helpers/reference.ts";

const tmp = mkdtempSync(join(tmpdir(), "cs-figure-pages-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface EmbeddedFigure {
  kind: string;
  title: string;
  spec: Record<string, unknown>;
  data: Record<string, unknown>;
}

function embeddedFigures(html: string): EmbeddedFigure[] {
  const m = /<script type="application\/json" id="cs-figures">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, "the page embeds its figure data");
  return JSON.parse(m[1]);
}

/** The page's text outside scripts, with entities decoded, for checking what a reader sees. */
function visibleText(html: string): string {
  return html
    .replace(/<script[\s\S]*?<\/script>/g, "")
    .replace(/<[^>]+>/g, " ")
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

const { clean, corrupted } = referenceJson.prompts;

test("patch.html names its prompts, answer/wrong tokens, metric and n; columns carry clean AND corrupted tokens", async () => {
  const html = join(tmp, "patch.html");
  const res = await runCli([...fixturePatchArgs(), "--target", "resid_pre", "--html", html]);
  assert.equal(res.code, 0, res.stderr);
  const page = readFileSync(html, "utf8");
  const text = visibleText(page);
  for (const p of [...clean, ...corrupted]) assert.ok(text.includes(p), `page lists the prompt ${p}`);
  assert.match(text, /answer token\s+'re/);
  assert.match(text, /wrong token\s+·are/, "the wrong token's leading space is visible");
  assert.match(text, /fraction restored = \(patched − corrupted\) \/ \(clean − corrupted\)/);
  assert.match(text, /2 prompt pairs/);
  const [fig] = embeddedFigures(page);
  const cols = fig.data.colLabels as string[];
  assert.equal(cols[2], "2: 're / ·are", "the changed position names both tokens");
  // The two pairs differ at position 1 ("We …" / "You …"): the name holds for both, not for the first only.
  assert.equal(cols[1], "1: We|You", "a position names every prompt's token");
});

test("patch -t head_all draws ONE faceted figure whose panels share one colour domain", async () => {
  const html = join(tmp, "head-all.html");
  const res = await runCli([...fixturePatchArgs(), "--target", "head_all", "--json", "--html", html]);
  assert.equal(res.code, 0, res.stderr);
  const values = JSON.parse(res.stdout).values as number[][][];
  const figs = embeddedFigures(readFileSync(html, "utf8"));
  assert.equal(figs.length, 1, "one figure, not five stacked heatmaps");
  const [fig] = figs;
  const panels = fig.data.panels as { title: string; values: number[][] }[];
  assert.deepEqual(
    panels.map((p) => p.title),
    ["z", "q", "k", "v", "pattern"],
  );
  const maxAbs = Math.max(...values.flat(2).map(Math.abs));
  assert.deepEqual(fig.data.domain, [-maxAbs, maxAbs], "the domain spans every component");
  const facet = fig.spec.facet as { field: string };
  assert.equal(facet.field, "panel");
  assert.equal(fig.spec.columns, 5, "the five components side by side in one row");
  const layer = (fig.spec.spec as { layer: { encoding: { color?: { scale: { domain: number[] } } } }[] })
    .layer;
  // Diverging: the colour scale pins its neutral midpoint at 0 between the shared ends.
  assert.deepEqual(layer[0].encoding.color?.scale.domain, [-maxAbs, 0, maxAbs]);
});

test("patch --method compare --html/--out writes the estimate-vs-exact scatter, a table and the values", async () => {
  const html = join(tmp, "compare.html");
  const out = join(tmp, "compare.json");
  const res = await runCli([
    ...fixturePatchArgs(),
    "--target",
    "resid_pre",
    "--method",
    "compare",
    "--html",
    html,
    "--out",
    out,
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.ok(existsSync(html), "--html was written");
  assert.ok(existsSync(out), "--out was written");
  const saved = JSON.parse(readFileSync(out, "utf8"));
  const exact = saved.results[0].exact.values as number[];
  const estimate = saved.results[0].estimate.values as number[];
  const page = readFileSync(html, "utf8");
  const [scatter] = embeddedFigures(page);
  assert.equal(scatter.kind, "scatter");
  const points = scatter.data.points as { x: number; y: number }[];
  assert.equal(points.length, exact.length);
  points.forEach((p, i) => {
    assert.ok(Math.abs(p.x - exact[i]) < 1e-12 && Math.abs(p.y - estimate[i]) < 1e-12, `point ${i}`);
  });
  assert.match(page, /<table class="cs-table">/);
  assert.equal(typeof saved.resid_pre.correlation, "number");
  // The caption is one sentence without the numbers (issue 28 point 10); they are in a table, as computed.
  const captions = [...page.matchAll(/<figcaption>([^<]*)<\/figcaption>/g)].map((m) => m[1]);
  assert.equal(captions.length, 1);
  assert.equal(captions[0].match(/[.!?](\s|$)/g)?.length, 1, captions[0]);
  assert.doesNotMatch(captions[0], /\d/);
  const cells = (tr: string) => [...tr.matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map((m) => m[1]);
  const row = [...page.matchAll(/<tr>(<td[^>]*>resid_pre<\/td>.*?)<\/tr>/g)]
    .map((m) => cells(m[1]))
    .find((r) => r.length === 5);
  assert.ok(row, "the agreement table has a row for resid_pre");
  assert.equal(Number(row[1]), exact.length);
  assert.equal(Number(row[2]), Number(saved.resid_pre.correlation.toFixed(3)));
  assert.equal(Number(row[3]), Number(saved.resid_pre.slope.toFixed(3)));
  assert.equal(Number(row[4]), Number(saved.resid_pre.intercept.toFixed(3)));
});

test("attribute --html lists its prompts and draws ±1 SE intervals for a batch", async () => {
  const html = join(tmp, "attr.html");
  const args = ["attribute", "--model", FIXTURE_DIR, "--answer", "'re", "--wrong", " are", "--html", html];
  for (const p of clean) args.push("--prompt", p);
  const res = await runCli([...args, "--json"]);
  assert.equal(res.code, 0, res.stderr);
  const page = readFileSync(html, "utf8");
  const text = visibleText(page);
  for (const p of clean) assert.ok(text.includes(p), `page lists ${p}`);
  assert.match(text, /2 prompts/);
  const figs = embeddedFigures(page);
  const bars = figs.find((f) => f.kind === "bar");
  assert.ok(bars, "a bar chart of components");
  const { lower, upper } = bars.data as { lower?: number[]; upper?: number[] };
  assert.ok(lower && upper, "error bars for a batch");
  assert.ok(
    lower.some((l, i) => upper[i] - l > 0),
    "intervals have width",
  );
  assert.match(text, /Error bars: ±1 SE over the 2 prompts/, "the caption says what ± is");
  const line = figs.find((f) => f.kind === "line");
  assert.ok(line, "a line chart of the accumulated residual");
  const series = (line.data as { series: { lower?: number[] }[] }).series;
  assert.ok(series[0].lower, "the accumulated residual has a ±1 SE band");
});

test("flags that would be ignored are refused with an error naming the flag", async () => {
  const cases: [string[], RegExp][] = [
    [[...fixturePatchArgs(), "--target", "resid_pre", "--by-pos"], /--by-pos applies to one head component/],
    [[...fixturePatchArgs(), "--target", "resid_pre", "--method", "compare", "--per-prompt"], /--per-prompt/],
    [["attention", "--model", FIXTURE_DIR, "--prompt", "hi", "--png"], /--png .*--svg-dir/],
    [
      ["heads", "--model", FIXTURE_DIR, "--prompt", "hi there", "--seqs", "3"],
      /--seqs has no effect with --prompt/,
    ],
    [["heads", "--model", FIXTURE_DIR, "--json", "--top", "3"], /--top has no effect with --json/],
  ];
  for (const [args, message] of cases) {
    const res = await runCli(args);
    assert.notEqual(res.code, 0, args.join(" "));
    assert.match(res.stderr, message);
    assert.match(res.stderr, /^circuitscope: error: /m);
  }
});

test("heads --html: the detectors' heatmaps share one colour domain, and the page states its inputs", async () => {
  const html = join(tmp, "heads.html");
  const res = await runCli(["heads", "--model", FIXTURE_DIR, "--seqs", "2", "--json", "--html", html]);
  assert.equal(res.code, 0, res.stderr);
  const scores = JSON.parse(res.stdout) as Record<string, number[][]>;
  const page = readFileSync(html, "utf8");
  const figs = embeddedFigures(page);
  assert.equal(figs.length, 3);
  // Detection scores are one-signed (attention mass): one sequential domain from 0 to the largest, shared.
  const all = Object.values(scores).flatMap((g) => g.flat());
  assert.ok(all.every((v) => v >= 0));
  for (const f of figs) assert.deepEqual(f.data.domain, [0, Math.max(...all)], f.title);
  assert.match(visibleText(page), /2 random token sequences/);
});

test("composition --html: pairs not in layer order are 'not computed' (null), not a score of 0", async () => {
  const html = join(tmp, "composition.html");
  const res = await runCli(["composition", "--model", FIXTURE_DIR, "--mode", "K", "--json", "--html", html]);
  assert.equal(res.code, 0, res.stderr);
  const [fig] = embeddedFigures(readFileSync(html, "utf8"));
  const values = fig.data.values as (number | null)[][];
  const labels = fig.data.rowLabels as string[];
  const layer = (i: number) => Number(/^L(\d+)/.exec(labels[i])?.[1]);
  values.forEach((row, i) => {
    row.forEach((v, j) => {
      assert.equal(v === null, layer(i) >= layer(j), `${labels[i]} -> ${labels[j]}`);
    });
  });
});
