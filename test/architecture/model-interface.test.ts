/**
 * The model's narrow interface: outside src/model nothing reaches the forward engine (`forwardEngine`) or
 * imports forward.ts; what other modules need is exported from src/model under its own names
 * (block-ops.ts, attention.ts, mlp.ts, readout.ts, layouts.ts). Read from the source text, so a reach
 * past the interface fails here when it is written. Tests of src/model itself (test/model) may look inside.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { importSpecifiers } from "../helpers/imports.ts";

const MODEL = join(REPO_ROOT, "src", "model");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "node_modules" ? [] : sourceFiles(path);
    return /\.(ts|mts|mjs|js)$/.test(name) ? [path] : [];
  });
}

/** Every source file that must use the interface: src/ outside src/model, bench/, scripts/, tests outside test/model. */
function outsideModel(): string[] {
  const inside = (path: string, dir: string) => path === dir || path.startsWith(dir + sep);
  return ["src", "bench", "scripts", "test"]
    .flatMap((d) => sourceFiles(join(REPO_ROOT, d)))
    .filter((f) => !inside(f, MODEL) && !inside(f, join(REPO_ROOT, "test", "model")))
    .filter((f) => f !== join(REPO_ROOT, "test", "architecture", "model-interface.test.ts"));
}

/** Files whose text reads `forwardEngine`, and files importing model/forward.ts. */
export function reachesPastInterface(files: readonly { path: string; text: string }[]): string[] {
  const out: string[] = [];
  for (const { path, text } of files) {
    if (/\bforwardEngine\b/.test(text)) out.push(`${path}: reads forwardEngine`);
    for (const spec of importSpecifiers(text))
      if (/(^|\/)model\/forward\.ts$/.test(spec)) out.push(`${path}: imports ${spec}`);
  }
  return out;
}

test("nothing outside src/model reads forwardEngine or imports model/forward.ts", () => {
  const files = outsideModel().map((f) => ({ path: relative(REPO_ROOT, f), text: readFileSync(f, "utf8") }));
  assert.ok(files.length > 100, `the scan found only ${files.length} files`);
  assert.deepEqual(reachesPastInterface(files), []);
});

test("the check sees a reach past the interface", () => {
  assert.deepEqual(
    reachesPastInterface([
      { path: "a.ts", text: "const ops = model.forwardEngine.blockOps(0);" },
      { path: "b.ts", text: 'import { headsFirst } from "../model/forward.ts";' },
      { path: "c.ts", text: 'import { blockOps } from "../model/block-ops.ts";\nconst e = "engine";' },
    ]),
    ["a.ts: reads forwardEngine", "b.ts: imports ../model/forward.ts"],
  );
});
