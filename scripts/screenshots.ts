/**
 * Renders a demo report with one figure of each kind and saves PNG screenshots of each figure as drawn by
 * chromium (OUTDIR/browser/), plus the static SVG/PNG exports (OUTDIR/export/) and the page (OUTDIR/demo.html).
 *
 *   node --import tsx scripts/screenshots.ts OUTDIR
 *
 * All data here is SYNTHETIC DEMO DATA shaped like an IOI study on GPT-2 small; it comes from no model —
 * except the explorer's screenshots at the end: its circuit panel (OUTDIR/browser/explorer-circuit-panel.png)
 * runs a circuit search on the test fixture model (test/fixtures/tiny-gpt2), and its graph panel
 * (OUTDIR/browser/explorer-graph-panel.png) computes a graph on stories260k with the bundled transcoders and
 * opens a feature node's page (OUTDIR/browser/explorer-graph-feature.png).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  attentionView,
  barChart,
  type Figure,
  heatmap,
  heatmapPanels,
  lineChart,
  pairPositionLabels,
  renderHtmlReport,
  scatterChart,
  tokenView,
  writeFigureFiles,
  writeGraphPage,
} from "../src/viz/index.ts";
import { RESID_AXIS } from "../src/viz/presets/attribution-figures.ts";
import { faithfulnessCurve } from "../src/viz/presets/circuit-figures.ts";
import { createServer } from "../src/server/app.ts";
import { launchBrowser } from "../test/helpers/browser.ts";
import { demoFrontEndGraph } from "../test/helpers/front-end-graph.ts";
import { computeGraphInPanel, findCircuitInPanel, startFixtureServer } from "../test/server/server-fixture.ts";

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(7);
const noise = (s: number) => (rand() - 0.5) * 2 * s;

const TOKENS = [
  "<|endoftext|>", "When", " John", " and", " Mary", " went", " to", " the", " store", ",", " John", " gave", " a", " drink", " to",
];
const LAYERS = Array.from({ length: 12 }, (_, l) => `L${l}`);
const HEADS = Array.from({ length: 12 }, (_, h) => `H${h}`);

function demoFigures(): { figure: Figure; caption: string; name: string }[] {
  const strong: Record<string, number> = { "9,9": 1.9, "9,6": 1.2, "10,0": 0.9, "10,7": -1.1, "11,10": -0.7, "8,10": 0.35, "7,3": 0.3 };
  const headAttr = LAYERS.map((_, l) => HEADS.map((_, h) => strong[`${l},${h}`] ?? noise(0.08)));
  const clean = ["embed", ...LAYERS].map((_, i) => (i < 9 ? 0.05 * i + noise(0.05) : 0.45 + (i - 8) * 0.85 + noise(0.1)));
  const corrupt = clean.map(() => noise(0.15));
  const band = (v: number[], w: number) => ({ lower: v.map((x) => x - w), upper: v.map((x) => x + w) });
  const nPos = TOKENS.length;
  const patch = LAYERS.map((_, l) =>
    TOKENS.map((_, p) => {
      const early = l <= 8 ? 1 : Math.max(0, 1 - (l - 8) * 0.4);
      if (p === 4) return early * 0.95 + noise(0.03);
      if (p === 10) return early * 0.55 + noise(0.03);
      if (p === nPos - 1) return (1 - early) * 0.95 + noise(0.03);
      return noise(0.02);
    }),
  );
  const top = headAttr
    .flatMap((row, l) => row.map((v, h) => ({ label: `L${l}H${h}`, v })))
    .sort((a, b) => Math.abs(b.v) - Math.abs(a.v))
    .slice(0, 10);
  const points = headAttr.flatMap((row, l) =>
    row.map((v, h) => ({ label: `L${l}H${h}`, x: v, y: v * (0.8 + noise(0.15)) + noise(0.05), group: l >= 9 ? "layers 9-11" : "layers 0-8" })),
  );
  const causal = (f: (d: number, s: number) => number) =>
    TOKENS.map((_, d) => {
      const row = TOKENS.map((_, s) => (s <= d ? Math.exp(f(d, s)) : 0));
      const z = row.reduce((a, b) => a + b, 0);
      return row.map((x) => x / z);
    });
  const heads = [
    { label: "L9H9 (name mover)", pattern: causal((d, s) => (d === nPos - 1 && s === 4 ? 4 : s === 0 ? 1.5 : noise(0.5))) },
    { label: "L4H11 (previous token)", pattern: causal((d, s) => (s === d - 1 ? 4 : s === 0 ? 1 : noise(0.3))) },
    { label: "L0H1 (duplicate token)", pattern: causal((d, s) => (d === 10 && s === 2 ? 3.5 : s === d ? 1.2 : noise(0.4))) },
  ];
  const neuronSamples = [
    { label: "sample 1", text: ["The", " cat", " sat", " on", " the", " mat", "."] },
    { label: "sample 2 (code)", text: ["if", " (", "a", " <", " b", " &&", " c", ")", " {", "\n", "  ", "return", ' "', "x", '";', "\n", "}"] },
    { label: "sample 3", text: [" In", " 1969", ",", " Apollo", " 11", " landed", " on", " the", " Moon", " in", " July", "."] },
    { label: "sample 4 (byte and SentencePiece pieces)", text: ["▁Once", "▁upon", " <0xF0><0x9F>", "<0xA4>", "<0x97>", "Ġtime", "ĊĊ"] },
  ].map((s) => ({
    label: s.label,
    tokens: s.text,
    values: s.text.map((t) => (/\d/.test(t) ? 2.5 + noise(0.8) : /[<&{(]/.test(t) ? -0.8 + noise(0.2) : noise(0.4))),
  }));
  const components = ["z", "q", "k", "v", "pattern"];
  const headAll = components.map((title, c) => ({
    title,
    values: LAYERS.map((_, l) => HEADS.map((_, h) => (strong[`${l},${h}`] ?? noise(0.05)) * [0.9, 0.2, 0.1, 0.6, 0.3][c])),
  }));
  // Some cells not computed (e.g. a sweep stopped early): grey, with a legend entry, never white.
  const partial = patch.map((row, l) => row.map((v, p) => (l >= 10 && p >= 8 ? null : v)));
  const corruptTokens = TOKENS.map((t, i) => (i === 4 ? " Anne" : t));
  const allHeads = Array.from({ length: 4 }, (_, l) =>
    Array.from({ length: 6 }, (_, h) => ({
      label: `L${l}H${h}`,
      pattern: causal((d, s) => (h % 3 === 0 ? (s === d - 1 ? 3 : noise(0.4)) : h % 3 === 1 ? (s === 0 ? 3 : noise(0.4)) : s === d ? 2.5 : noise(0.6))),
    })),
  ).flat();
  return [
    {
      name: "line",
      figure: lineChart({
        title: "Logit difference after each layer (demo data)",
        x: ["embed", ...LAYERS],
        series: [
          { name: "clean (contraction group, 're vs ·are)", values: clean, ...band(clean, 0.25) },
          { name: "corrupted (ABC)", values: corrupt, ...band(corrupt, 0.2) },
        ],
        xTitle: RESID_AXIS,
        yTitle: "logit difference (IO − S)",
      }),
      caption: "Legend swatches take the line colour (not the pale band); the long legend label is not cut. Bands: ±1 SE over prompts.",
    },
    {
      name: "bar",
      figure: barChart({
        title: "Top heads by direct effect (demo data)",
        labels: top.map((t) => t.label),
        values: top.map((t) => t.v),
        errors: top.map(() => 0.05 + rand() * 0.1),
        errorLabel: "±1 SE over prompts",
        labelTitle: "head",
        valueTitle: "direct logit attribution",
      }),
      caption: "Ten largest heads by |direct logit attribution|; error bars: ±1 SE over prompts.",
    },
    {
      name: "line-13-groups",
      figure: lineChart({
        title: "Thirteen groups, no two drawn alike (demo data)",
        x: ["embed", ...LAYERS],
        series: Array.from({ length: 13 }, (_, g) => ({
          name: `group-${g}`,
          values: [0, ...LAYERS.map((_, l) => (g + 1) * 0.15 * (l + 1))],
        })),
        xTitle: "layer",
        yTitle: "logit difference",
      }),
      caption: "Ten colours, then the same colours dashed: thirteen series, thirteen styles.",
    },
    {
      name: "heatmap-sequential",
      figure: heatmap({
        title: "Induction scores per head (demo data, all ≥ 0)",
        rowLabels: LAYERS,
        colLabels: HEADS,
        values: headAttr.map((row) => row.map((v) => Math.abs(v))),
        rowTitle: "layer",
        colTitle: "head",
        valueTitle: "induction score",
      }),
      caption: "One-signed data on a sequential scale: light is 0, dark the largest score.",
    },
    {
      name: "faithfulness-curve",
      figure: faithfulnessCurve(
        {
          faithfulness: [1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 512, 2461].map((edges, i) => ({
            edges,
            topN: edges,
            metric: 0,
            normalized: edges === 32 ? 0.74 : Math.min(1, 0.09 * (i + 1)),
          })),
        },
        24,
      ),
      caption: "Log x axis; the rule is the chosen circuit, the ring a size where the curve drops.",
    },
    {
      name: "heatmap-heads",
      figure: heatmap({
        title: "Direct logit attribution per head (demo data)",
        rowLabels: LAYERS,
        colLabels: HEADS,
        values: headAttr,
        rowTitle: "layer",
        colTitle: "head",
        valueTitle: "logit difference",
      }),
      caption: "Blue heads push towards the indirect object, red heads against it; neutral grey is no effect.",
    },
    {
      name: "heatmap-positions",
      figure: heatmap({
        title: "Activation patching: resid_pre by layer and position (demo data)",
        rowLabels: LAYERS,
        colLabels: pairPositionLabels(TOKENS, corruptTokens),
        values: partial,
        rowTitle: "layer",
        colTitle: "position (clean / corrupted token where they differ)",
        valueTitle: "fraction restored",
      }),
      caption: "Fraction restored by patching one residual stream position; the changed position names both tokens; grey cells were not computed.",
    },
    {
      name: "heatmap-panels",
      figure: heatmapPanels({
        title: "Patching each head component: layer × head (demo data)",
        rowLabels: LAYERS,
        colLabels: HEADS,
        panels: headAll,
        rowTitle: "layer",
        colTitle: "head",
        valueTitle: "fraction restored",
      }),
      caption: "patch -t head_all: five panels side by side on ONE colour scale, one legend.",
    },
    {
      name: "scatter",
      figure: scatterChart({
        title: "Attribution patching vs activation patching (demo data)",
        points,
        xTitle: "exact fraction restored",
        yTitle: "estimated fraction restored",
        identityLine: true,
      }),
      caption: "Each point is a head; the dashed line is estimate = exact (patch --method compare --html).",
    },
    {
      name: "attention",
      figure: attentionView({ title: "Attention patterns (demo data)", tokens: TOKENS, heads }),
      caption: "Pick a head; hover a token to see what it attends to (row) and what attends to it (column).",
    },
    {
      name: "attention-all-heads",
      figure: attentionView({ title: "All heads at a glance (demo data)", tokens: TOKENS, heads: allHeads }),
      caption: "Heads named LxHy get a layer × head grid of thumbnails; click one to open it.",
    },
    {
      name: "tokens",
      figure: tokenView({
        title: "Neuron L5 N1234 activation (demo data)",
        samples: neuronSamples,
        valueLabel: "L5 N1234 activation",
        scale: "diverging",
      }),
      caption: "Tokens coloured by the neuron's activation (blue positive, red negative); byte pieces show as <0xNN>, SentencePiece ▁ as ·.",
    },
  ];
}

/**
 * The attribution-graph page (`graph --html`) on a random graph pruned by the project's own code: two nodes
 * pinned, hovering the busiest feature so its top edges show.
 */
async function graphPageShot(page: import("playwright-core").Page, outDir: string): Promise<void> {
  const graph = demoFrontEndGraph(3, 6, 11, 120);
  const path = resolve(join(outDir, "graph.html"));
  writeGraphPage(path, graph, {
    title: "Attribution graph — DEMO DATA (random graph, no model)",
    model: "none (random adjacency)",
    edgeThreshold: 0.98,
    featureUrl: "features/L{layer}-F{feature}.html",
  });
  await page.setViewportSize({ width: 1500, height: 1100 });
  await page.goto(pathToFileURL(path).href);
  await page.waitForSelector("body[data-cs-ready]");
  const degree = (id: string) => graph.links.filter((l) => l.source === id || l.target === id).length;
  const busiest = graph.nodes
    .filter((n) => n.feature_type === "cross layer transcoder")
    .sort((a, b) => degree(b.node_id) - degree(a.node_id))[0];
  for (const n of [busiest, graph.nodes.find((n) => n.feature_type === "logit")])
    if (n) await page.click(`.cs-gnode[data-id="${n.node_id}"]`, { modifiers: ["Shift"] });
  await page.hover(`.cs-gnode[data-id="${busiest.node_id}"]`);
  const file = join(outDir, "browser", "graph-page.png");
  await page.screenshot({ path: file, fullPage: true });
  console.log(file);
}

async function main(): Promise<void> {
  const outDir = process.argv[2];
  if (!outDir) throw new Error("usage: node --import tsx scripts/screenshots.ts OUTDIR");
  const figs = demoFigures();
  mkdirSync(join(outDir, "browser"), { recursive: true });
  const html = renderHtmlReport({
    title: "circuitscope figures — DEMO DATA",
    subtitle: "Synthetic data shaped like an IOI study; not produced by any model.",
    sections: [{ heading: "One figure of each kind", figures: figs.map(({ figure, caption }) => ({ figure, caption })) }],
  });
  const htmlPath = resolve(join(outDir, "demo.html"));
  writeFileSync(htmlPath, html);
  for (const f of figs) await writeFigureFiles(join(outDir, "export"), f.name, f.figure, { png: true });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 }, deviceScaleFactor: 1.5 });
    await page.goto(pathToFileURL(htmlPath).href);
    await page.waitForSelector("body[data-cs-ready]");
    const frames = await page.$$("figure.cs-figure");
    for (let k = 0; k < frames.length; k++) {
      const file = join(outDir, "browser", `${String(k + 1).padStart(2, "0")}-${figs[k].name}.png`);
      await frames[k].screenshot({ path: file });
      console.log(file);
    }
    // The interactive state people will see: hovering the final token in the attention view.
    const k = figs.findIndex((f) => f.name === "attention");
    // Tall viewport + figure at the top: the screenshot must not scroll the page from under the mouse.
    await page.setViewportSize({ width: 1200, height: 1400 });
    await frames[k].evaluate((el) => el.scrollIntoView({ block: "start" }));
    await page.hover(`[data-cs-figure="${k}"] .cs-tok[data-index="${TOKENS.length - 1}"]`);
    const hoverFile = join(outDir, "browser", `${String(k + 1).padStart(2, "0")}-attention-hover.png`);
    await frames[k].screenshot({ path: hoverFile });
    console.log(hoverFile);
    await graphPageShot(page, outDir);
    console.log(await explorerCircuitPanel(browser, join(outDir, "browser", "explorer-circuit-panel.png")));
    await explorerFeatureShots(browser, outDir);
    for (const file of await explorerGraphPanel(browser, outDir)) console.log(file);
  } finally {
    await browser.close();
  }
}

/** The explorer's circuit panel after an EAP search on the fixture model: graph, subtitle, inputs, curve. */
async function explorerCircuitPanel(browser: Awaited<ReturnType<typeof launchBrowser>>, file: string) {
  const fx = await startFixtureServer();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await findCircuitInPanel(page, fx);
    await page.waitForSelector("#circuit-out[data-ready] .figure svg");
    await page.locator("#circuit-panel").screenshot({ path: file });
    return file;
  } finally {
    await fx.server.close();
  }
}

/**
 * The explorer with the bundled SAE (real model, not demo data): the prediction view's active features,
 * and the page of the first one opened from there.
 */
async function explorerFeatureShots(
  browser: Awaited<ReturnType<typeof launchBrowser>>,
  outDir: string,
): Promise<void> {
  const sae = new URL("../models/stories260k-saes/blocks.2.hook_resid_pre", import.meta.url).pathname;
  const server = await createServer({ model: { model: "stories260k", backend: "onnx", process: true }, sae });
  try {
    const base = await server.app.listen({ port: 0, host: "127.0.0.1" });
    const page = await browser.newPage({ viewport: { width: 1300, height: 1000 }, deviceScaleFactor: 1.5 });
    const prompt = "Once upon a time, there was a little girl named Lily. She";
    await page.goto(`${base}/?${new URLSearchParams({ prompt, token: server.token ?? "" })}`);
    await page.waitForSelector("body[data-ready]");
    await page.click("#run-prompt");
    await page.waitForSelector("#predictions-out button.feature-link");
    await page.locator("#predictions-out button.feature-link").first().click();
    await page.waitForSelector("#feature-out[data-ready]");
    for (const [id, name] of [
      ["#prompt-panel", "explorer-prediction-features"],
      ["#feature-panel", "explorer-feature-panel"],
    ]) {
      const file = join(outDir, "browser", `${name}.png`);
      await page.locator(id).screenshot({ path: file });
      console.log(file);
    }
  } finally {
    await server.close();
  }
}

/**
 * The explorer's graph panel computing a graph on stories260k with the bundled transcoders
 * (models/stories260k-transcoders): a real model and real transcoders, not demo data. Then a feature node
 * above layer 0 clicked: its page (from the bundled feature index) opened below the graph.
 */
async function explorerGraphPanel(browser: Awaited<ReturnType<typeof launchBrowser>>, outDir: string) {
  const fx = await startFixtureServer({ transcoders: "models/stories260k-transcoders" }, "stories260k");
  const panel = join(outDir, "browser", "explorer-graph-panel.png");
  const feature = join(outDir, "browser", "explorer-graph-feature.png");
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await computeGraphInPanel(page, fx, "Lily gave Tom the ball. Then Tom");
    await page.locator("#graph-panel").screenshot({ path: panel });
    // data-row is the layer + 1 (row 0: token embeddings).
    await page.locator('#graph-out .cs-gnode.cs-linked:not([data-row="1"])').first().click();
    await page.waitForSelector("#graph-feature-out[data-ready] svg");
    await page.locator("#graph-feature-out").screenshot({ path: feature });
    return [panel, feature];
  } finally {
    await fx.server.close();
  }
}

await main();
