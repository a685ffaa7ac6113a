/**
 * The docs' code examples use the package as a user installs it: they import only from "circuitscope" and
 * its subpath exports (never ./src/...), every name they import is exported there, and examples that would
 * download a model are marked as skipped. scripts/consumer-test.sh type-checks and runs the same examples
 * against the installed tarball; this test gives the same verdict on imports in seconds.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  allDocExamples,
  checkStatedValue,
  docScript,
  extractExamples,
  importsOf,
  statedValue,
} from "../../scripts/consumer/doc-examples.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  name: string;
  exports: Record<string, string | { default: string }>;
};
const docs = allDocExamples(REPO_ROOT);

/** The source entry of an export: "./dist/viz/index.js" → src/viz/index.ts. */
function sourceEntry(specifier: string): string | null {
  const key = specifier === pkg.name ? "." : `.${specifier.slice(pkg.name.length)}`;
  const target = pkg.exports[key];
  if (target === undefined || typeof target === "string") return null;
  return join(REPO_ROOT, target.default.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts"));
}

test("the extractor finds every ts/js block, its skip mark and its marked output", () => {
  const md = [
    "```ts",
    'import { a, type B } from "circuitscope";',
    "```",
    "<!-- example: skip: needs gpt2 from the hub -->",
    "```js",
    "x();",
    "```",
    "```sh",
    "echo not code",
    "```",
    "<!-- example output -->",
    "```text",
    "4.2",
    "```",
  ].join("\n");
  const doc = extractExamples(md, "x.md");
  assert.deepEqual(
    doc.examples.map((e) => [e.line, e.skip]),
    [
      [1, undefined],
      [5, "needs gpt2 from the hub"],
    ],
  );
  assert.deepEqual(doc.outputs, ["4.2\n"]);
  assert.deepEqual(importsOf(doc.examples[0].code), [
    {
      specifier: "circuitscope",
      names: [
        { name: "a", local: "a", type: false },
        { name: "B", local: "B", type: true },
      ],
    },
  ]);
});

test("a doc's script merges its blocks' imports, one statement per module, values winning over types", () => {
  const md = [
    "```ts",
    'import { type T, f } from "circuitscope";',
    "f();",
    "```",
    "```ts",
    'import { T, g } from "circuitscope";',
    "g(new T());",
    "```",
  ].join("\n");
  const script = docScript(extractExamples(md, "y.md")) ?? "";
  assert.equal(script.match(/^import /gm)?.length, 1);
  assert.match(script, /^import \{ T, f, g \} from "circuitscope";$/m);
  assert.ok(script.indexOf("f();") < script.indexOf("g(new T());"));
});

test("README and the docs have runnable examples", () => {
  const files = docs.map((d) => d.file);
  for (const f of ["README.md", "docs/from-transformerlens.md", "docs/circuits.md", "docs/install.md"])
    assert.ok(files.includes(f), `${f} has examples`);
});

for (const doc of docs) {
  test(`${doc.file}: examples import only what the package exports`, async () => {
    for (const e of doc.examples) {
      for (const imp of importsOf(e.code)) {
        if (imp.specifier.startsWith("node:")) continue;
        const entry = sourceEntry(imp.specifier);
        assert.ok(
          entry,
          `${e.file}:${e.line} imports "${imp.specifier}", which is not "circuitscope" or one of its subpath exports`,
        );
        const mod = (await import(entry)) as Record<string, unknown>;
        for (const n of imp.names.filter((x) => !x.type))
          assert.ok(
            n.name in mod,
            `${e.file}:${e.line} imports ${n.name} from "${imp.specifier}", which does not export it`,
          );
      }
    }
  });

  test(`${doc.file}: examples load only the bundled or the fixture model, unless marked skipped with a reason`, () => {
    for (const e of doc.examples) {
      if (e.skip !== undefined) {
        assert.ok(e.skip.length > 0, `${e.file}:${e.line} is skipped without a reason`);
        continue;
      }
      for (const m of e.code.matchAll(/fromPretrained\(\s*["']([^"']+)["']/g))
        assert.ok(
          m[1] === "stories260k" || m[1].startsWith("test/fixtures/"),
          `${e.file}:${e.line} loads "${m[1]}", which needs the network: use "stories260k" or mark it <!-- example: skip: REASON -->`,
        );
    }
  });
}

test("a comment that starts with a JSON value becomes a check of the statement; prose comments stay prose", () => {
  assert.equal(
    checkStatedValue("x.shape; // [2, 8, 64] = resid", "d.md:3"),
    '__check(x.shape, [2, 8, 64], "d.md:3");',
  );
  assert.equal(
    checkStatedValue('  const a = tok("\'re"); // 821', "d.md:4"),
    '  const a = tok("\'re"); __check(a, 821, "d.md:4"); // 821',
  );
  assert.equal(
    checkStatedValue('names; // ["a]", "b"], in order', "d.md:5"),
    '__check(names, ["a]", "b"], "d.md:5");',
  );
  for (const prose of [
    "const normed = f(); // [7, batch, 1, d_model], cached",
    "const d = g(); // W_U[:, a] per prompt",
    "h(); // Float64Array [3 * 4]",
    "model.x; // 5x faster",
    "for (const y of z) w(y); // 3",
  ])
    assert.equal(checkStatedValue(prose, "d.md:1"), prose);
  assert.equal(statedValue("-0.25e-3 rest"), "-0.25e-3");
  assert.equal(statedValue("null: folded"), "null");
});
