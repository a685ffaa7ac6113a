/** The explorer's circuit panel: the background job over the API, and the panel in chromium. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import { DEFAULT_COMPARE_TOP } from "../../src/circuits/defaults.ts";
import { findCircuit } from "../../src/circuits/find-circuit.ts";
import type { ExplorerServer } from "../../src/server/app.ts";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { loadFixtureModel, referenceJson } from "../helpers/reference.ts";
import { type FixtureServer, findCircuitInPanel, startFixtureServer } from "../server/server-fixture.ts";

let server: ExplorerServer;
let fx: FixtureServer;
let browser: Browser;
const { clean, corrupted, answer, wrong } = referenceJson.prompts;
const job = {
  kind: "circuit",
  clean: clean[0],
  corrupted: corrupted[0],
  answer,
  wrong,
  method: "eap",
  faithfulness: 0.8,
};

before(async () => {
  browser = await launchBrowser();
  fx = await startFixtureServer();
  server = fx.server;
});
after(async () => {
  await browser?.close();
  await server?.close();
});

interface CircuitJobView {
  status: string;
  result?: { edges: string[]; heads: string[]; svg: string; summary: string };
  error?: { message: string };
}

test("a circuit job runs in the background and finds the circuit the library finds", async () => {
  const res = await fx.api("/api/jobs", {
    method: "POST",
    body: JSON.stringify(job),
    headers: { "content-type": "application/json" },
  });
  assert.equal(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  const stream = await (await fx.api(`/api/jobs/${id}/events`)).text(); // ends when the job finishes
  const views = stream
    .split("\n\n")
    .filter((c) => c.startsWith("data: "))
    .map((c) => JSON.parse(c.slice(6)) as CircuitJobView);
  const last = views.at(-1) as CircuitJobView;
  assert.equal(last.status, "done", JSON.stringify(last.error));
  const model = loadFixtureModel();
  const task = new CircuitTask(model, {
    clean: [model.toTokens(clean[0])],
    corrupted: [model.toTokens(corrupted[0])],
    answer: [model.toSingleToken(answer)],
    wrong: [model.toSingleToken(wrong)],
  });
  const want = await findCircuit(task, { method: "eap", faithfulness: 0.8, compareTop: 0 });
  assert.deepEqual(last.result?.edges, want.circuit.edges);
  assert.match(
    last.result?.summary ?? "",
    new RegExp(`${want.circuit.edges.length} of ${task.graph.nEdges} edges`),
  );
  // Bad input is refused before the job is queued.
  const bad = await fx.api("/api/jobs", {
    method: "POST",
    body: JSON.stringify({ ...job, corrupted: `${corrupted[0]} now` }),
    headers: { "content-type": "application/json" },
  });
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /position by position/);
  const badMethod = await fx.api("/api/jobs", {
    method: "POST",
    body: JSON.stringify({ ...job, method: "acdc" }),
    headers: { "content-type": "application/json" },
  });
  assert.equal(badMethod.status, 400);
});

test("the circuit panel: progress, the CLI's 20 checked edges, prompts from 0, the subtitle inside the panel, the graph with hover scores, a head's attention on click, the curve", async () => {
  const errors: string[] = [];
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  collectPageErrors(page, errors);
  await findCircuitInPanel(page, fx);
  const status = await page.locator("#circuit-out .job-status").innerText();
  assert.match(status, /Smallest circuit found reaching faithfulness 0.8/);
  // The estimate is checked on as many edges as the CLI checks (its --compare-top default): 20, not 10.
  assert.equal(DEFAULT_COMPARE_TOP, 20);
  assert.match(status, /Estimate vs exact on the estimate's top 20 edges/);
  // Prompts are numbered from 0, as on the CLI's pages: one clean and one corrupted prompt, each item 0.
  for (const which of ["clean", "corrupted"]) {
    const list = page.locator(`#circuit-out dl.inputs dt:text-is("${which} prompts") + dd ol`);
    assert.equal(await list.evaluate((ol) => (ol as HTMLOListElement).start), 0, which);
    assert.deepEqual(await list.locator("li").allInnerTexts(), [which === "clean" ? clean[0] : corrupted[0]]);
  }
  // The graph (720 px drawn) is scaled into the panel (narrower at this width), so its subtitle lines are
  // seen whole: each one's box lies inside the SVG's box and inside the panel's visible box.
  const boxes = await page.evaluate(() => {
    // No named helper here: tsx would wrap it in a __name call the page does not have.
    const panel = document.getElementById("circuit-panel") as HTMLElement;
    const svg = document.querySelector("#circuit-out svg.cs-circuit") as SVGSVGElement;
    const p = panel.getBoundingClientRect();
    const style = getComputedStyle(panel);
    // The panel's visible box: inside its border and padding (it scrolls what overflows).
    const inner = {
      left: p.left + panel.clientLeft + Number.parseFloat(style.paddingLeft),
      right: p.left + panel.clientLeft + panel.clientWidth - Number.parseFloat(style.paddingRight),
      top: p.top,
      bottom: p.bottom,
    };
    return {
      panel: inner,
      svg: svg.getBoundingClientRect().toJSON() as DOMRect,
      drawnWidth: Number(svg.getAttribute("width")),
      subtitles: [...svg.querySelectorAll("text.cs-subtitle")].map(
        (e) => e.getBoundingClientRect().toJSON() as DOMRect,
      ),
    };
  });
  assert.ok(
    boxes.drawnWidth > boxes.panel.right - boxes.panel.left,
    "the panel is narrower than the drawing",
  );
  assert.equal(boxes.subtitles.length, 4);
  type Box = Pick<DOMRect, "left" | "right" | "top" | "bottom">;
  const inside = (b: Box, o: Box) =>
    b.left >= o.left - 0.5 && b.right <= o.right + 0.5 && b.top >= o.top - 0.5 && b.bottom <= o.bottom + 0.5;
  assert.ok(
    inside(boxes.svg, boxes.panel),
    `the SVG ${JSON.stringify(boxes.svg)} is scaled into the panel ${JSON.stringify(boxes.panel)}`,
  );
  for (const [i, b] of boxes.subtitles.entries()) {
    assert.ok(
      inside(b, boxes.svg),
      `subtitle ${i} ${JSON.stringify(b)} inside the SVG ${JSON.stringify(boxes.svg)}`,
    );
    assert.ok(
      inside(b, boxes.panel),
      `subtitle ${i} ${JSON.stringify(b)} inside the panel ${JSON.stringify(boxes.panel)}`,
    );
  }
  const edges = page.locator("#circuit-out path.cs-edge");
  assert.ok((await edges.count()) > 0);
  // Point the mouse at the middle of the strongest edge (drawn last, so on top).
  await edges.last().scrollIntoViewIfNeeded();
  const at = await edges.last().evaluate((e) => {
    const path = e as SVGPathElement;
    const p = path.getPointAtLength(path.getTotalLength() / 2);
    const m = path.getScreenCTM() as DOMMatrix;
    return { x: p.x * m.a + p.y * m.c + m.e, y: p.x * m.b + p.y * m.d + m.f };
  });
  await page.mouse.move(at.x, at.y);
  assert.match(await page.locator("#circuit-out p.hint").innerText(), /->.*: score /);
  // Heads carry the report's names (L1H2), as on the CLI's page.
  assert.doesNotMatch(await page.locator("#circuit-out").innerHTML(), /a\d+\.h\d+/);
  const head = page.locator('#circuit-out g.cs-node[data-node^="L"]').first();
  const name = (await head.getAttribute("data-node")) as string;
  const [, l, h] = /^L(\d+)H(\d+)$/.exec(name) as RegExpExecArray;
  await head.click();
  await page.waitForSelector("#circuit-out .circuit-attention[data-ready] .cs-attention");
  assert.match(await page.locator("#circuit-out .circuit-attention").innerText(), new RegExp(`L${l}H${h}`));
  assert.equal(
    (await page.locator("#circuit-out .figure svg, #circuit-out .figure canvas").count()) > 0,
    true,
  );
  assert.deepEqual(errors, []);
  await page.close();
});
