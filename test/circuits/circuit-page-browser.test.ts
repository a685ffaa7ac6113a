import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import { edgeLabel, nodeLabel } from "../../src/circuits/graph.ts";
import { launchBrowser, openWatchedPage } from "../helpers/browser.ts";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { referenceJson } from "../helpers/reference.ts";

const tmp = mkdtempSync(join(tmpdir(), "cs-circuit-page-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("circuit page: hover an edge shows its score and exact score; click a head shows its attention", async () => {
  const P = referenceJson.prompts;
  const html = join(tmp, "c.html");
  const out = join(tmp, "c.json");
  const r = await runCli([
    "circuit",
    "--model",
    FIXTURE_DIR,
    "--clean",
    P.clean[0],
    "--corrupted",
    P.corrupted[0],
    "--answer",
    P.answer,
    "--wrong",
    P.wrong,
    "--method",
    "eap",
    "--top-n",
    "30",
    "--html",
    html,
    "--out",
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse((await import("node:fs")).readFileSync(out, "utf8"));
  // The circuit's top edge has an exact score (it is among the compared ones).
  const top = result.edges.find((e: { name: string }) => result.circuit.edges.includes(e.name));
  const browser = await launchBrowser();
  try {
    const w = await openWatchedPage(browser);
    await w.page.goto(pathToFileURL(html).href);
    // The page names edges and heads as reports do (L1H2, MLP1), the JSON as the edge graph does (a1.h2, m1).
    const topLabel = edgeLabel(top.name);
    await w.page.hover(`path.cs-edge[data-edge="${topLabel}"]`, { force: true });
    const hover = await w.page.textContent("#cs-hover");
    assert.ok(hover?.startsWith(`${topLabel}: score `), hover ?? "");
    assert.ok(hover?.includes(`exact ${Number(top.exact.toPrecision(4))}`), `${hover} vs exact ${top.exact}`);
    const head = nodeLabel(
      result.circuit.edges.map((n: string) => n.split("->")[0]).find((n: string) => n.startsWith("a")),
    );
    await w.page.click(`g.cs-node[data-node="${head}"]`);
    const grid = await w.page.$$eval("#cs-attn svg.cs-attention-grid rect.cs-cell", (els) => els.length);
    assert.equal(grid, P.clean_tokens[0].length ** 2);
    assert.match((await w.page.textContent("#cs-attn")) ?? "", new RegExp(`${head}: attention`));
    assert.deepEqual(w.errors, []);
    assert.deepEqual(w.networkAttempts, []);
  } finally {
    await browser.close();
  }
});
