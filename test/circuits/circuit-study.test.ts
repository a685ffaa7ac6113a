import assert from "node:assert/strict";
import { test } from "node:test";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import { findCircuit } from "../../src/circuits/find-circuit.ts";
import type { StudyContext } from "../../src/studies/context.ts";
import type { StudyResults } from "../../src/studies/results.ts";
import { circuitStage, headNode } from "../../src/studies/stages/circuit.ts";
import { loadFixtureModel, referenceJson } from "../helpers/reference.ts";

const model = loadFixtureModel({ backend: "reference" });
const P = referenceJson.prompts;
const tokens = {
  clean: P.clean_tokens,
  corrupted: P.corrupted_tokens,
  answer: [P.answer_token, P.answer_token],
  wrong: [P.wrong_token, P.wrong_token],
};

test("the study's circuit section: the focus group's EAP-IG circuit at 80 %, compared with the top DLA heads", async () => {
  const omitted: string[] = [];
  const ctx = {
    model,
    focus: { name: "g", tokens },
    work: () => () => {},
    omitted,
  } as unknown as StudyContext;
  const topHeads = [{ label: "L2H1" }, { label: "L0H3" }, { label: "L1H0" }];
  const res = {
    focusGroup: "g",
    focus: { analysed: true, normalised: true, topHeads },
  } as unknown as StudyResults;
  const slice = await circuitStage.run(ctx, res);
  const c = slice.focus.circuit;
  assert.ok(c);
  // The same circuit as the library's own search.
  const want = await findCircuit(new CircuitTask(model, tokens), {
    method: "eap-ig",
    igSteps: 5,
    faithfulness: 0.8,
    compareTop: 0,
  });
  assert.deepEqual(c.edgeNames, want.circuit.edges);
  assert.ok(c.reached && c.normalized >= 0.8);
  // The comparison partitions the DLA list by membership in the circuit's components.
  const comps = new Set(c.components);
  assert.deepEqual(c.manualTop, ["a2.h1", "a0.h3", "a1.h0"]);
  assert.deepEqual(
    c.versusManual.inCircuit,
    c.manualTop.filter((h) => comps.has(h)),
  );
  assert.deepEqual(
    c.versusManual.missing,
    c.manualTop.filter((h) => !comps.has(h)),
  );
  // The section: curve + strongest edges, and the sentence naming the numbers.
  (res.focus as unknown as Record<string, unknown>).circuit = c;
  const [section] = circuitStage.sections(res);
  assert.deepEqual(
    section.figures.map((f) => f.name),
    ["focus-circuit-faithfulness", "focus-circuit-edges"],
  );
  assert.match(section.text ?? "", new RegExp(`${c.edges} of ${c.totalEdges} edges`));
  // Heads are named one way in a report (L2H1), never also by the edge graph's node names (a2.h1).
  const edgeLabels = JSON.stringify(section.figures[1].figure.data);
  for (const t of [section.text ?? "", edgeLabels, ...section.figures.map((f) => f.caption)])
    assert.doesNotMatch(t, /\ba\d+\.h\d+\b/, t);
  assert.match(section.text ?? "", /L2H1/);
  assert.match(circuitStage.findings?.(res)[0].text ?? "", /edges \(EAP-IG \(5 steps\)\) keep/);
  // A group whose gap is not normalised gets no circuit, and the report says why.
  const flat = await circuitStage.run(ctx, {
    ...res,
    focus: { ...res.focus, normalised: false },
  } as StudyResults);
  assert.equal(flat.focus.circuit, undefined);
  assert.match(omitted.join(" "), /not large enough/);
  assert.equal(headNode("L10H7"), "a10.h7");
});
