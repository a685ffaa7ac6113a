import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repo root, and the shared read-only fixtures beside it (`../shared`). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const SHARED_DIR = resolve(REPO_ROOT, "../shared");
export const FIXTURE_DIR = resolve(SHARED_DIR, "fixtures/tiny-gpt2");
