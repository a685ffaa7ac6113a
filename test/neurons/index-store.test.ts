/**
 * An index directory is trusted only as far as circuitscope wrote it: every name a manifest gives must
 * stay inside the directory (a fuzz test of random manifest paths against a victim file beside it), and
 * `index --out` writes only into an absent or empty directory or an index of its own.
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative, resolve } from "node:path";
import { after, test } from "node:test";
import {
  indexDirProblem,
  manifestPath,
  readIndexState,
  readManifest,
  writeIndexState,
} from "../../src/neurons/index-store.ts";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { writeSmallCheckpoint } from "../helpers/small-index.ts";

const root = mkdtempSync(join(tmpdir(), "cs-index-store-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** Does `name`, joined to `dir`, name something strictly inside `dir`? (Independent of the code's check.) */
function staysInside(dir: string, name: string): boolean {
  const rel = relative(dir, resolve(dir, name));
  // One path component, and one the OS accepts (no NUL byte).
  const oneComponent = !rel.includes("/") && !name.includes("\\") && !name.includes("\0");
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) && oneComponent;
}

test("fuzz: a manifest naming any path outside its directory is refused, and nothing outside is touched", () => {
  const pieces = [
    "..",
    ".",
    "/",
    "\\",
    "victim.txt",
    "histogram.u32",
    "a",
    "%2e%2e",
    "\0",
    "",
    root,
    "index",
  ];
  let seed = 99;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const keys = ["topValues", "topContexts", "topPositions", "histogram", "positive", "contextIds"];
  let refused = 0;
  for (let trial = 0; trial < 300; trial++) {
    const parent = join(root, `fuzz-${trial}`);
    const dir = join(parent, "index");
    mkdirSync(parent);
    writeFileSync(join(parent, "victim.txt"), "the user's");
    writeSmallCheckpoint(dir);
    const name = Array.from({ length: 1 + random(4) }, () => pieces[random(pieces.length)]).join("");
    const key = keys[random(keys.length)];
    const manifest = JSON.parse(readFileSync(manifestPath(dir), "utf8"));
    manifest.files[key] = name;
    writeFileSync(manifestPath(dir), JSON.stringify(manifest));
    const inside = staysInside(dir, name);
    let threw = false;
    try {
      readManifest(dir);
    } catch (err) {
      threw = true;
      assert.match((err as Error).message, /not a file name inside the index directory/);
    }
    assert.equal(threw, !inside, `files.${key} = ${JSON.stringify(name)}`);
    // Resuming (which deletes the previous generation's files) reaches nothing outside.
    try {
      const state = readIndexState(dir);
      writeIndexState(dir, {
        settings: state.manifest.settings,
        shard: state.manifest.shard,
        progress: state.manifest.progress,
        stats: state.stats,
        samples: state.samples,
        contexts: state.contexts,
      });
    } catch {
      // refused, or a missing file inside: either way nothing outside may change
    }
    assert.equal(readFileSync(join(parent, "victim.txt"), "utf8"), "the user's", JSON.stringify(name));
    assert.deepEqual(readdirSync(parent).sort(), ["index", "victim.txt"]);
    if (!inside) refused++;
    rmSync(parent, { recursive: true });
  }
  assert.ok(refused > 50 && refused < 300, `${refused} of 300 random paths escaped: both kinds were tried`);
});

test("an index goes only into an absent or empty directory, or an index circuitscope wrote", () => {
  const flag = "--out";
  assert.equal(indexDirProblem(join(root, "absent"), { flag }), null);
  const empty = join(root, "empty");
  mkdirSync(empty);
  assert.equal(indexDirProblem(empty, { flag }), null);
  const user = join(root, "user");
  mkdirSync(user);
  writeFileSync(join(user, "histogram.u32"), "the user's");
  assert.match(
    indexDirProblem(user, { flag, resume: true }) ?? "",
    /is not a circuitscope neuron index \(it has no manifest\.json\)/,
  );
  writeFileSync(join(user, "manifest.json"), '{"my": "own manifest"}');
  const problem = indexDirProblem(user, { flag, resume: true }) ?? "";
  assert.match(problem, /its manifest\.json was not written by circuitscope/);
  assert.doesNotMatch(problem, /already holds a neuron index/);
  const ours = join(root, "ours");
  writeSmallCheckpoint(ours);
  assert.match(indexDirProblem(ours, { flag }) ?? "", /already holds a neuron index\. Pass --resume/);
  assert.equal(indexDirProblem(ours, { flag, resume: true }), null);
});

test("index --out a directory of the user's is refused before the model loads, and nothing in it changes", async () => {
  const dir = join(root, "cli-user");
  mkdirSync(dir);
  writeFileSync(join(dir, "histogram.u32"), "the user's");
  writeFileSync(join(dir, "manifest.json"), "{}");
  const corpus = join(root, "corpus.txt");
  writeFileSync(corpus, "A few words of text. ".repeat(50));
  for (const extra of [[], ["--resume"]]) {
    const res = await runCli(["index", "--model", FIXTURE_DIR, "--corpus", corpus, "--out", dir, ...extra]);
    assert.equal(res.code, 1, res.stderr);
    assert.match(
      res.stderr,
      /--out .* is not a circuitscope neuron index \(its manifest\.json was not written by circuitscope\)/,
    );
    assert.doesNotMatch(res.stderr, /Loading|already holds/);
  }
  assert.equal(readFileSync(join(dir, "histogram.u32"), "utf8"), "the user's");
  assert.deepEqual(readdirSync(dir).sort(), ["histogram.u32", "manifest.json"]);
  assert.ok(!existsSync(join(dir, "top-values.f32")));
});
