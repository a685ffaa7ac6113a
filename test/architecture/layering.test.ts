/**
 * The library's layers, lowest first: a module may import its own layer and lower ones, never a higher
 * one, and nothing in src/ may import the benchmarks in bench/. Read from the import statements of every
 * source file, so an arrow pointing the wrong way fails here when it is written.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { importSpecifiers } from "../helpers/imports.ts";

/**
 * Lowest first. sae sits just above model (an SAE runs inside the model's hooks; analyses and patching
 * treat its features as a unit). analysis sits below gradients (a logit metric and its gradient build on the logit
 * difference of analysis/answer-metrics.ts). circuits sits above patching (it reuses the sweeps' abort checkpoint) and
 * below viz. graphs (attribution graphs over transcoder features) sits above circuits and below viz. viz sits
 * above patching and circuits (its presets turn their results into figures) and below neurons (a neuron page is
 * drawn with viz). sae-train sits above corpus (it harvests activations from corpora) and below the CLI.
 */
export const LAYERS = [
  ["util"],
  ["tensor"],
  ["weights"],
  ["hub"],
  ["tokenizer"],
  ["model"],
  ["sae"],
  ["analysis"],
  ["gradients"],
  ["patching"],
  ["circuits"],
  ["graphs"],
  ["viz"],
  ["corpus"],
  ["sae-train"],
  ["neurons"],
  ["studies"],
  ["server"],
  ["cli"],
] as const;

const SRC = join(REPO_ROOT, "src");
const BENCH = join(REPO_ROOT, "bench");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|mjs|js)$/.test(name) ? [path] : [];
  });
}

/** The src/ layer a path belongs to ("bench" for the benchmarks, null outside both). */
function layerOf(path: string): string | null {
  if (path === BENCH || path.startsWith(BENCH + sep)) return "bench";
  if (!path.startsWith(SRC + sep)) return null;
  return relative(SRC, path).split(sep)[0];
}

const rank = new Map<string, number>(LAYERS.flatMap((names, i) => names.map((n) => [n, i] as const)));

interface Edge {
  file: string;
  from: string;
  to: string;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = layerOf(file)!;
    for (const spec of importSpecifiers(readFileSync(file, "utf8"))) {
      if (!spec.startsWith(".")) continue; // packages and node: built-ins
      const to = layerOf(resolve(dirname(file), spec));
      if (to !== null && to !== from) out.push({ file: relative(REPO_ROOT, file), from, to });
    }
  }
  return out;
}

test("every top-level folder of src/ has a place in the layer order", () => {
  const dirs = readdirSync(SRC).filter((d) => statSync(join(SRC, d)).isDirectory());
  assert.deepEqual(
    dirs.filter((d) => !rank.has(d)),
    [],
    "add the new folder to LAYERS in test/architecture/layering.test.ts",
  );
});

test("the import scan sees the imports it is meant to police", () => {
  const seen = new Set(edges().map((e) => `${e.from}->${e.to}`));
  // Arrows that exist today; if the scan stopped seeing imports, the checks below would pass vacuously.
  for (const e of ["model->tensor", "patching->model", "cli->patching", "server->viz", "neurons->viz"])
    assert.ok(seen.has(e), `expected the scan to find ${e}`);
  assert.deepEqual(
    importSpecifiers(
      'import a from "./a.ts";\nimport type { B } from "../b/b.ts";\nexport { c } from "./c.ts";\nconst d = await import("../../d.ts");\nimport "./e.ts";',
    ),
    ["./a.ts", "../b/b.ts", "./c.ts", "../../d.ts", "./e.ts"],
  );
});

test("no library module imports the benchmarks in bench/", () => {
  assert.deepEqual(
    edges()
      .filter((e) => e.to === "bench")
      .map((e) => e.file),
    [],
  );
});

test("no layer imports a higher one (e.g. tensor must not import model)", () => {
  const wrong = edges()
    .filter((e) => e.to !== "bench" && rank.get(e.to)! > rank.get(e.from)!)
    .map((e) => `${e.file}: ${e.from} imports ${e.to}`);
  assert.deepEqual(wrong, []);
});
