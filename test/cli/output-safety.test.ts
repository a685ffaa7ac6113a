/**
 * Never lose a user's work: --overwrite replaces only an earlier circuitscope report, and every output path
 * is checked before the model is touched (the model here does not exist, so an error about the model would
 * mean the output check came too late).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type CliResult, runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";

const root = mkdtempSync(join(tmpdir(), "cs-output-safety-"));
after(() => rmSync(root, { recursive: true, force: true }));
const NO_MODEL = join(root, "no-such-model");

/** Every file under `dir` (relative path -> contents), to show nothing was deleted or added. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(path.slice(dir.length), readFileSync(path, "utf8"));
  }
  return files;
}

function study(out: string, ...extra: string[]): Promise<CliResult> {
  return runCli([
    "study",
    "contractions",
    "--model",
    FIXTURE_DIR,
    "--quick",
    "--out",
    out,
    "--json",
    ...extra,
  ]);
}

test("study --overwrite on a directory circuitscope did not write refuses and deletes nothing", async () => {
  const project = join(root, "project");
  mkdirSync(join(project, "src"), { recursive: true });
  writeFileSync(join(project, "notes.md"), "my own notes\n");
  writeFileSync(join(project, "src", "main.py"), "print('mine')\n");
  const before = snapshot(project);
  const res = await study(project, "--overwrite");
  assert.notEqual(res.code, 0);
  assert.match(
    res.stderr,
    /^circuitscope: error: --out .*project already exists and is not a circuitscope report/m,
  );
  assert.match(res.stderr, /nothing was changed/);
  assert.doesNotMatch(res.stderr, /\n\s+at /, "no stack trace");
  assert.deepEqual(snapshot(project), before);
  assert.deepEqual(readdirSync(root).sort(), ["project"], "no temporary directory left beside it");
});

test("the README's study command runs twice: the second replaces its own report with --overwrite", async () => {
  const out = join(root, "report");
  const first = await study(out, "--overwrite");
  assert.equal(first.code, 0, first.stderr);
  const marker = JSON.parse(readFileSync(join(out, ".circuitscope-report.json"), "utf8"));
  assert.equal(marker.schema, "circuitscope-report/1");
  // Without --overwrite an earlier report is kept, and the message says how to replace it.
  const refused = await study(out);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /holds an earlier report: add --overwrite/);
  const second = await study(out, "--overwrite");
  assert.equal(second.code, 0, second.stderr);
  const marker2 = JSON.parse(readFileSync(join(out, ".circuitscope-report.json"), "utf8"));
  assert.notEqual(marker2.written, marker.written, "the report was rewritten");
  assert.ok(readFileSync(join(out, "report.html"), "utf8").trimEnd().endsWith("</html>"));
  assert.deepEqual(
    readdirSync(root).filter((n) => n.includes("circuitscope-tmp")),
    [],
  );
  // The marker lists what the study wrote: the report, results and every figure.
  const listed: string[] = marker2.files;
  const written = readdirSync(out, { recursive: true })
    .map(String)
    .filter((f) => f !== ".circuitscope-report.json" && f !== "figures");
  assert.deepEqual([...listed].sort(), written.sort());
  assert.ok(listed.includes("report.html") && listed.includes("results.json"));
  // A file the user added to the report is never deleted: --overwrite refuses, naming it, before the model loads.
  const markerText = readFileSync(join(out, ".circuitscope-report.json"), "utf8");
  writeFileSync(join(out, "my-notes.txt"), "notes");
  const withNotes = await study(out, "--overwrite");
  assert.equal(withNotes.code, 1, withNotes.stderr);
  assert.match(withNotes.stderr, /files circuitscope did not write \(my-notes\.txt\): nothing was changed/);
  assert.doesNotMatch(withNotes.stderr, /Loading/);
  assert.equal(readFileSync(join(out, "my-notes.txt"), "utf8"), "notes");
  assert.equal(
    readFileSync(join(out, ".circuitscope-report.json"), "utf8"),
    markerText,
    "the report is kept",
  );
});

test("a bad output path of any writing command fails at once, before the model is loaded", async () => {
  const aFile = join(root, "a-file.txt");
  writeFileSync(aFile, "x");
  const aDir = join(root, "a-dir");
  mkdirSync(aDir, { recursive: true });
  writeFileSync(join(aDir, "keep.txt"), "keep");
  const m = ["--model", NO_MODEL];
  const patch = [
    "patch",
    ...m,
    "--clean",
    "a b",
    "--corrupted",
    "a c",
    "--answer",
    "x",
    "--wrong",
    "y",
    "-t",
    "resid_pre",
  ];
  const cases: { args: string[]; error: RegExp }[] = [
    { args: ["study", "contractions", ...m, "--out", aFile], error: /--out .* is a file, not a directory/ },
    { args: ["study", "contractions", ...m, "--out", aDir], error: /is not a circuitscope report/ },
    {
      args: [...patch, "--out", aDir],
      error: /--out .*a-dir is a directory: give a file path/,
    },
    {
      args: [...patch, "--html", join(aFile, "p.html")],
      error: /--html .*a-file.txt is a file, so nothing can be created under it/,
    },
    {
      args: ["attribute", ...m, "-p", "hi", "-a", "x", "-w", "y", "--html", aDir],
      error: /--html .* is a directory/,
    },
    { args: ["attention", ...m, "-p", "hi", "--html", aDir], error: /--html .* is a directory/ },
    {
      args: ["attention", ...m, "-p", "hi", "--svg-dir", aFile],
      error: /--svg-dir .* is a file, not a directory/,
    },
    { args: ["heads", ...m, "--html", aDir], error: /--html .* is a directory/ },
    {
      args: ["composition", ...m, "--html", join(aFile, "sub", "c.html")],
      error: /a-file.txt is a file, so nothing/,
    },
    {
      args: ["neuron", ...m, "--layer", "0", "--neuron", "0", "--html", aDir],
      error: /--html .* is a directory/,
    },
    {
      args: ["index", ...m, "--corpus", "sotu", "--out", aFile],
      error: /--out .* is a file, not a directory/,
    },
    { args: ["index-merge", aDir, "--out", aFile], error: /--out .* is a file, not a directory/ },
    { args: ["download", "gpt2", "--cache-dir", aFile], error: /--cache-dir .* is a file, not a directory/ },
  ];
  for (const c of cases) {
    const started = performance.now();
    const res = await runCli(c.args);
    const seconds = (performance.now() - started) / 1000;
    const what = c.args.slice(0, 2).join(" ");
    assert.notEqual(res.code, 0, what);
    assert.match(res.stderr, /^circuitscope: error: /, what);
    assert.match(res.stderr, c.error, `${what}: ${res.stderr}`);
    assert.doesNotMatch(
      res.stderr,
      /no-such-model|Model directory/,
      `${what}: the model was looked at first`,
    );
    // Generous bound (a spawned node + tsx start is most of it); the real proof is the message above.
    assert.ok(seconds < 15, `${what} took ${seconds} s`);
  }
  assert.equal(readFileSync(aFile, "utf8"), "x");
  assert.deepEqual(readdirSync(aDir), ["keep.txt"]);
  // Nothing was started, so nothing (not even a temporary file) was written beside the outputs.
  assert.deepEqual(
    readdirSync(root).filter((n) => /tmp/.test(n)),
    [],
  );
});

test("identical clean and corrupted prompts are refused before the model loads, and by the library", async () => {
  const res = await runCli([
    "patch",
    "--model",
    NO_MODEL,
    "--clean",
    "They're here",
    "--corrupted",
    "They're here",
    "--answer",
    " and",
    "--wrong",
    " or",
    "-t",
    "resid_pre",
  ]);
  assert.notEqual(res.code, 0);
  assert.match(
    res.stderr,
    /^circuitscope: error: The --clean and --corrupted prompts are identical \("They're here"\)/m,
  );
  const batch = await runCli([
    "patch",
    "--model",
    FIXTURE_DIR,
    "--clean",
    "a b",
    "--corrupted",
    "a c",
    "--clean",
    "x y",
    "--corrupted",
    "x y",
    "--answer",
    " and",
    "--wrong",
    " or",
    "-t",
    "resid_pre",
  ]);
  assert.notEqual(batch.code, 0);
  assert.match(batch.stderr, /Pair 1: --clean and --corrupted prompts are identical/);
  const { preparePairs } = await import("../../src/patching/pairs.ts");
  const { loadFixtureModel } = await import("../helpers/reference.ts");
  const model = loadFixtureModel();
  // Different texts can still be the same tokens: token lists are compared too.
  assert.throws(
    () => preparePairs(model, [[50256, 1, 2]], [[50256, 1, 2]]),
    /The prompt pair: the clean and corrupted prompts are identical/,
  );
  assert.doesNotThrow(() => preparePairs(model, [[50256, 1, 2]], [[50256, 1, 3]]));
});

/** The study on a prompt file, with a model that does not exist: an error about the file comes first. */
function studyOnPrompts(file: string, out: string): Promise<CliResult> {
  return runCli(["study", "contractions", "--model", NO_MODEL, "--prompts", file, "--out", join(root, out)]);
}

test("a study prompt file with an identical pair, or not UTF-8, is refused before the model loads", async () => {
  const pair = {
    clean: "We're here while they",
    corrupted: "We are here while they",
    answer: "'re",
    wrong: " are",
    group: "'re/they",
  };
  const same = join(root, "same.jsonl");
  writeFileSync(same, `${JSON.stringify(pair)}\n${JSON.stringify({ ...pair, corrupted: pair.clean })}\n`);
  const r1 = await studyOnPrompts(same, "s1");
  assert.notEqual(r1.code, 0);
  assert.match(
    r1.stderr,
    /^circuitscope: error: .*same.jsonl line 2: the clean and corrupted prompts are identical/m,
  );

  const latin1 = join(root, "latin1.jsonl");
  const text = `${JSON.stringify({ ...pair, clean: "We're in the café while they" })}\n`;
  const bytes = Buffer.from(text, "latin1");
  writeFileSync(latin1, bytes);
  const offset = bytes.indexOf(0xe9); // é in Latin-1: one byte that UTF-8 cannot start a character with here
  assert.ok(offset > 0);
  const r2 = await studyOnPrompts(latin1, "s2");
  assert.notEqual(r2.code, 0);
  assert.match(
    r2.stderr,
    new RegExp(
      `^circuitscope: error: Prompt file .*latin1.jsonl is not valid UTF-8 \\(byte offset ${offset}, value 0xe9\\)`,
      "m",
    ),
  );
  assert.match(r2.stderr, /save it as UTF-8/);
  assert.doesNotMatch(r2.stderr, /no-such-model/);
});
