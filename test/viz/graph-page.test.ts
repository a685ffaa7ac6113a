/** The graph page's HTML as text: its stated inputs, the embedded JSON (safe in a script element), the CSP. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GRAPH_PAGE_CSP, graphPageInputs, renderGraphPage } from "../../src/viz/index.ts";
import { demoFrontEndGraph } from "../helpers/front-end-graph.ts";

const GRAPH = demoFrontEndGraph(11);

test("the inputs state model, prompt, transcoders, thresholds and scores as given", () => {
  const inputs = Object.fromEntries(
    graphPageInputs(GRAPH, {
      model: "stories260k",
      edgeThreshold: 0.95,
      scores: { replacement: 0.8125, completeness: 0.93 },
    }).map((i) => [i.label, i.value]),
  );
  assert.equal(inputs.Model, "stories260k");
  assert.equal(inputs.Prompt, GRAPH.metadata.prompt);
  assert.equal(inputs["Prompt tokens"], String(GRAPH.metadata.prompt_tokens.length));
  assert.equal(inputs.Thresholds, `node ${GRAPH.metadata.node_threshold}, edge 0.95`);
  assert.equal(inputs.Scores, "replacement 0.8125, completeness 0.93");
  const none = Object.fromEntries(graphPageInputs(GRAPH, {}).map((i) => [i.label, i.value]));
  assert.equal(none.Model, "not given");
  assert.equal(none.Scores, "not given");
  assert.equal(none.Thresholds, `node ${GRAPH.metadata.node_threshold}, edge not given`);
});

test("a prompt that closes a script element stays data; the JSON embedded is the graph; the CSP forbids the network", () => {
  const hostile = structuredClone(GRAPH);
  hostile.metadata.prompt = 'x</script><script>alert(1)</script><!-- "&';
  hostile.metadata.prompt_tokens[1] = "</script>";
  const html = renderGraphPage(hostile, { model: "<b>m</b>" });
  assert.equal(html.match(/<\/script>/gi)?.length, 4, "only the page's own four script elements close");
  assert.ok(html.includes("&lt;b&gt;m&lt;/b&gt;"));
  const json = /<script type="application\/json" id="cs-graph-json">(.*?)<\/script>/s.exec(html)?.[1] ?? "";
  assert.deepEqual(JSON.parse(json), hostile);
  assert.ok(html.includes(`<meta http-equiv="Content-Security-Policy" content="${GRAPH_PAGE_CSP}">`));
  assert.doesNotMatch(GRAPH_PAGE_CSP, /connect-src|https?:/);
  assert.match(GRAPH_PAGE_CSP, /^default-src 'none';/);
});

test("a repeated node id is noted on the page, not silently dropped", () => {
  const g = structuredClone(GRAPH);
  const html = renderGraphPage({ ...g, nodes: [...g.nodes, g.nodes[0]] });
  assert.match(html, /<dt>Notes<\/dt>/);
  assert.ok(html.includes(`node id &quot;${g.nodes[0].node_id}&quot; is given to two nodes`));
  assert.doesNotMatch(renderGraphPage(g), /<dt>Notes<\/dt>/);
});
