/**
 * The TypeScript/JavaScript examples of README.md and docs/*.md, as scripts a user could run. A doc's
 * examples share variables (docs/from-transformerlens.md builds on its earlier snippets), so each doc
 * becomes ONE module: its non-skipped blocks in order, their imports merged at the top.
 *
 * Marks, on the line right before a fence:
 * - `<!-- example: skip: REASON -->` — the block is not run (say why: e.g. it needs a model from the network);
 * - `<!-- example output -->` before a ```text block — what the doc's script prints to stdout, in order.
 *
 * A one-line statement whose comment starts with a JSON value states the value: `t.shape; // [2, 8, 64]`
 * and `const a = model.toSingleToken("'re"); // 821` become checks (numbers to 1e-5 relative), so the
 * values the docs show are the values the code gives. Comments that do not start with one are prose.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface CodeExample {
  /** Repository-relative file and 1-based line of the opening fence. */
  file: string;
  line: number;
  code: string;
  /** Why the block is not run, when it is marked so. */
  skip?: string;
}

export interface DocExamples {
  file: string;
  examples: CodeExample[];
  /** The text blocks marked as the script's output, in order. */
  outputs: string[];
}

export interface ImportStatement {
  specifier: string;
  /** Imported binding names; `type` marks a type-only import. */
  names: { name: string; local: string; type: boolean }[];
}

const CODE_FENCE = /^```(ts|typescript|js|javascript|mjs|mts)\s*$/;
const SKIP_MARK = /^<!--\s*example:\s*skip:?(.*?)-->\s*$/;
const OUTPUT_MARK = /^<!--\s*example output\s*-->\s*$/;

/** README.md and every docs/*.md (not the generated docs/api/), in a stable order. */
export function docFiles(repoRoot: string): string[] {
  const docs = readdirSync(join(repoRoot, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`);
  return ["README.md", ...docs];
}

export function extractExamples(markdown: string, file: string): DocExamples {
  const lines = markdown.split("\n");
  const examples: CodeExample[] = [];
  const outputs: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const isCode = CODE_FENCE.test(lines[i]);
    const isOutput = lines[i] === "```text" && i > 0 && OUTPUT_MARK.test(lines[i - 1]);
    if (!isCode && !isOutput) {
      if (lines[i].startsWith("```")) i = closingFence(lines, i, file); // skip other blocks whole
      continue;
    }
    const end = closingFence(lines, i, file);
    const body = lines.slice(i + 1, end).join("\n");
    if (isOutput) outputs.push(`${body}\n`);
    else {
      const mark = i > 0 ? SKIP_MARK.exec(lines[i - 1]) : null;
      examples.push({ file, line: i + 1, code: body, ...(mark ? { skip: mark[1].trim() } : {}) });
    }
    i = end;
  }
  return { file, examples, outputs };
}

function closingFence(lines: readonly string[], open: number, file: string): number {
  for (let j = open + 1; j < lines.length; j++) if (/^```\s*$/.test(lines[j])) return j;
  throw new Error(`${file}:${open + 1}: code block is not closed`);
}

const IMPORT = /^import\s+(type\s+)?\{([^}]*)\}\s*from\s*["']([^"']+)["'];?[ \t]*$/gm;

/** The `import { ... } from "..."` statements of a piece of code (the only form the docs use). */
export function importsOf(code: string): ImportStatement[] {
  return [...code.matchAll(IMPORT)].map((m) => ({
    specifier: m[3],
    names: m[2]
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map((s) => {
        const type = m[1] !== undefined || s.startsWith("type ");
        const [name, local] = s.replace(/^type\s+/, "").split(/\s+as\s+/);
        return { name, local: local ?? name, type };
      }),
  }));
}

const STATED = /^(\s*)(.+?);\s*\/\/\s*(.+)$/;
const DECLARED = /^(?:const|let)\s+([A-Za-z_$][\w$]*)\s*=/;
const NOT_AN_EXPRESSION = /^(?:const|let|var|import|export|return|if|for|while|throw)\b/;

/** The JSON value a comment starts with (an array, number, string, boolean or null), or undefined. */
export function statedValue(comment: string): string | undefined {
  let end = 0;
  if (comment.startsWith("[")) {
    let depth = 0;
    let inString = false;
    for (; end < comment.length; end++) {
      const c = comment[end];
      if (inString) {
        if (c === "\\") end++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "[") depth++;
      else if (c === "]" && --depth === 0) break;
    }
    end++;
  } else if (comment.startsWith('"')) end = comment.indexOf('"', 1) + 1;
  else end = /^(?:-?\d+(?:\.\d+)?(?:e-?\d+)?|true|false|null)(?![\w.])/.exec(comment)?.[0].length ?? 0;
  if (end <= 0) return undefined;
  const text = comment.slice(0, end);
  try {
    JSON.parse(text);
    return text;
  } catch {
    return undefined;
  }
}

/** A line with its stated value turned into a check (see the module comment); other lines unchanged. */
export function checkStatedValue(line: string, where: string): string {
  const m = STATED.exec(line);
  if (!m) return line;
  const [, indent, statement, comment] = m;
  const value = statedValue(comment);
  if (value === undefined) return line;
  const declared = DECLARED.exec(statement);
  if (declared)
    return `${indent}${statement}; __check(${declared[1]}, ${value}, ${JSON.stringify(where)}); // ${comment}`;
  if (NOT_AN_EXPRESSION.test(statement)) return line;
  return `${indent}__check(${statement}, ${value}, ${JSON.stringify(where)});`;
}

/** Defined at the top of every doc script: equal after typed arrays become arrays, numbers to 1e-5 relative. */
const CHECK_FUNCTION = `function __check(actual: unknown, expected: unknown, where: string): void {
  const norm = (v: unknown): unknown =>
    ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : Array.isArray(v) ? v.map(norm) : v;
  const eq = (a: unknown, e: unknown): boolean =>
    typeof a === "number" && typeof e === "number"
      ? Math.abs(a - e) <= 1e-5 * Math.max(1, Math.abs(e))
      : Array.isArray(a) && Array.isArray(e)
        ? a.length === e.length && a.every((x, i) => eq(x, e[i]))
        : a === e;
  if (!eq(norm(actual), norm(expected)))
    throw new Error(\`\${where}: the doc says \${JSON.stringify(expected)}, the code gives \${JSON.stringify(norm(actual))}\`);
}`;

/** One module from a doc's runnable examples: imports merged (one statement per specifier) above the code. */
export function docScript(doc: DocExamples): string | null {
  const run = doc.examples.filter((e) => e.skip === undefined);
  if (run.length === 0) return null;
  const bySpecifier = new Map<string, Map<string, { name: string; type: boolean }>>();
  const bodies: string[] = [];
  for (const e of run) {
    for (const imp of importsOf(e.code)) {
      const names = bySpecifier.get(imp.specifier) ?? new Map();
      for (const n of imp.names) {
        const seen = names.get(n.local);
        names.set(n.local, { name: n.name, type: (seen?.type ?? true) && n.type });
      }
      bySpecifier.set(imp.specifier, names);
    }
    const lines = e.code.replace(IMPORT, "").split("\n");
    const checked = lines.map((l, i) => checkStatedValue(l, `${e.file}:${e.line + 1 + i}`));
    bodies.push(`// ${e.file}:${e.line}\n${checked.join("\n")}`);
  }
  const imports = [...bySpecifier].map(([specifier, names]) => {
    const list = [...names].map(([local, n]) => `${n.type ? "type " : ""}${n.name === local ? local : `${n.name} as ${local}`}`);
    return `import { ${list.join(", ")} } from "${specifier}";`;
  });
  return `${imports.join("\n")}\n\n${CHECK_FUNCTION}\n\n${bodies.join("\n\n")}\n`;
}

/** Every doc's examples (docs with none are left out). */
export function allDocExamples(repoRoot: string): DocExamples[] {
  return docFiles(repoRoot)
    .map((f) => extractExamples(readFileSync(join(repoRoot, f), "utf8"), f))
    .filter((d) => d.examples.length > 0);
}

/** A file name for a doc's script: `docs/from-transformerlens.md` → `docs-from-transformerlens.mts`. */
export function scriptName(file: string): string {
  return `${file.replace(/\.md$/, "").replaceAll("/", "-")}.mts`;
}
