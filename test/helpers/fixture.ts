import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repo root, and the random GPT-2 test checkpoint with float64 references vendored in the repository. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const FIXTURE_DIR = resolve(REPO_ROOT, "test/fixtures/tiny-gpt2");
