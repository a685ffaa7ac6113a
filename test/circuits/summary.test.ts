import assert from "node:assert/strict";
import { test } from "node:test";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import { findCircuit } from "../../src/circuits/find-circuit.ts";
import { circuitBrief, compareWithManual } from "../../src/circuits/summary.ts";
import { loadFixtureModel, referenceJson } from "../helpers/reference.ts";

const model = loadFixtureModel({ backend: "reference" });
const P = referenceJson.prompts;
const task = new CircuitTask(model, {
  clean: P.clean_tokens,
  corrupted: P.corrupted_tokens,
  answer: [P.answer_token, P.answer_token],
  wrong: [P.wrong_token, P.wrong_token],
});

test("a circuit's brief: its components, strongest edges and check, and the comparison with a manual list", async () => {
  const r = await findCircuit(task, { method: "eap-ig", igSteps: 3, faithfulness: 0.8, compareTop: 5 });
  const b = circuitBrief(r, 4);
  assert.equal(b.edges, r.circuit.edges.length);
  assert.equal(b.totalEdges, task.graph.nEdges);
  // Components: every head/MLP an edge of the circuit starts or ends at, from the edges' own fields.
  const want = new Set(
    r.edges.filter((e) => r.circuit.edges.includes(e.name)).flatMap((e) => [e.parent, e.child]),
  );
  want.delete("input");
  want.delete("logits");
  assert.deepEqual(new Set(b.components), want);
  assert.ok(b.components.length > 0);
  // Strongest: circuit edges only, by |score|.
  assert.equal(b.strongest.length, Math.min(4, b.edges));
  for (const s of b.strongest) assert.ok(r.circuit.edges.includes(s.name));
  for (let i = 1; i < b.strongest.length; i++)
    assert.ok(Math.abs(b.strongest[i - 1].score) >= Math.abs(b.strongest[i].score));
  assert.equal(b.estimateCheck?.edges, 5);
  const manual = [b.components[0], "a2.h3", "m9"];
  const cmp = compareWithManual(b, manual);
  assert.deepEqual(
    cmp.inCircuit,
    manual.filter((c) => want.has(c)),
  );
  assert.deepEqual(
    cmp.missing,
    manual.filter((c) => !want.has(c)),
  );
  assert.deepEqual(new Set([...cmp.onlyInCircuit, ...cmp.inCircuit]), want);
});

test("an aborted search stops with the abort error (the CLI then writes nothing)", async () => {
  const stop = new AbortController();
  let calls = 0;
  await assert.rejects(
    () =>
      findCircuit(task, {
        method: "exact",
        topN: 5,
        signal: stop.signal,
        onProgress: () => {
          if (++calls === 3) stop.abort();
        },
      }),
    (e: Error) => e.name === "PatchAbortedError", // the long sweeps' one abort error
  );
  assert.equal(calls, 3, "stops at the next edge after the abort");
});
