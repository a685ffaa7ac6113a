/**
 * Run by scripts/consumer-test.sh: every doc's examples (scripts/consumer/doc-examples.ts) as scripts in the
 * consumer project APP_DIR, which installed the packed package — type-checked against the shipped
 * declarations, then run with tsx, their stdout compared with the doc's marked output.
 * Usage: node --import tsx scripts/consumer/run-doc-examples.ts APP_DIR
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { allDocExamples, docScript, scriptName } from "./doc-examples.ts";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const app = process.argv[2];
if (!app) throw new Error("usage: run-doc-examples.ts APP_DIR");

// docs/from-transformerlens.md runs on the repository's test fixture, by its repository-relative path.
cpSync(join(repo, "test/fixtures/tiny-gpt2"), join(app, "test/fixtures/tiny-gpt2"), { recursive: true });
const dir = join(app, "doc-examples");
mkdirSync(dir, { recursive: true });
const scripts: { file: string; path: string; expected: string | null }[] = [];
for (const doc of allDocExamples(repo)) {
  for (const e of doc.examples.filter((x) => x.skip !== undefined))
    console.log(`skipped ${e.file}:${e.line}: ${e.skip}`);
  const code = docScript(doc);
  if (code === null) continue;
  const path = join(dir, scriptName(doc.file));
  writeFileSync(path, code);
  scripts.push({ file: doc.file, path, expected: doc.outputs.length > 0 ? doc.outputs.join("") : null });
}
writeFileSync(
  join(dir, "tsconfig.json"),
  JSON.stringify({
    compilerOptions: {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ["node"],
    },
    include: ["*.mts"],
  }),
);

function run(cmd: string, args: string[], timeoutMs: number) {
  // spawnSync kills the child with SIGKILL at the timeout: nothing outlives this script.
  return spawnSync(cmd, args, { cwd: app, encoding: "utf8", timeout: timeoutMs, killSignal: "SIGKILL" });
}

let failed = 0;
const tsc = run(process.execPath, [join(repo, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")], 300_000);
if (tsc.status !== 0) {
  failed++;
  console.error(`doc examples do not type-check against the installed package:\n${tsc.stdout}${tsc.stderr}`);
}
const tsx = import.meta.resolve("tsx");
for (const s of scripts) {
  const res = run(process.execPath, ["--import", tsx, s.path], 600_000);
  if (res.status !== 0) {
    failed++;
    console.error(`${s.file}: its examples failed (exit ${res.status ?? res.signal}):\n${res.stderr}`);
  } else if (s.expected !== null && res.stdout !== s.expected) {
    failed++;
    console.error(`${s.file}: printed\n${res.stdout}\nbut the doc says it prints\n${s.expected}`);
  } else console.log(`ran ${s.file}${s.expected !== null ? " (output as the doc shows)" : ""}`);
}
if (failed > 0) process.exit(1);
console.log(`${scripts.length} docs' examples type-check and run against the installed package`);
