/**
 * Hub settings from options and the same environment variables as Python's huggingface_hub
 * (so a machine set up for Python tools works unchanged), and repo-id parsing.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export interface HubOptions {
  /** Cache root (the `hub` folder). Default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Hub base URL. Default: HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Bearer token. Default: HF_TOKEN, else the token file ($HF_TOKEN_PATH or $HF_HOME/token). */
  token?: string;
  /** Branch, tag or commit hash. Default: main. */
  revision?: string;
  /** Cache only, no network. Default: HF_HUB_OFFLINE. */
  offline?: boolean;
  /** Show a progress bar on stderr (only when stderr is a terminal). */
  progress?: boolean;
  /** fetch implementation (tests, proxies). Default: global fetch. */
  fetch?: typeof fetch;
}

export interface HubSettings {
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  revision: string;
  offline: boolean;
  progress: boolean;
  fetch: typeof fetch;
}

export const DEFAULT_ENDPOINT = "https://huggingface.co";

function expandHome(path: string): string {
  return path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path;
}

function isTruthy(value: string | undefined): boolean {
  return value !== undefined && ["1", "ON", "YES", "TRUE"].includes(value.trim().toUpperCase());
}

export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HOME) return resolve(expandHome(env.HF_HOME));
  const xdg = env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : join(homedir(), ".cache");
  return resolve(xdg, "huggingface");
}

export function defaultHubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE;
  return explicit ? resolve(expandHome(explicit)) : join(hfHome(env), "hub");
}

function readTokenFile(env: NodeJS.ProcessEnv): string | undefined {
  const path = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : join(hfHome(env), "token");
  if (!existsSync(path)) return undefined;
  const token = readFileSync(path, "utf8").trim();
  return token === "" ? undefined : token;
}

export function hubSettings(opts: HubOptions = {}, env: NodeJS.ProcessEnv = process.env): HubSettings {
  return {
    cacheDir: opts.cacheDir ? resolve(expandHome(opts.cacheDir)) : defaultHubCacheDir(env),
    endpoint: (opts.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ""),
    token: opts.token ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN ?? readTokenFile(env),
    revision: opts.revision ?? "main",
    offline: opts.offline ?? isTruthy(env.HF_HUB_OFFLINE),
    progress: opts.progress ?? false,
    fetch: opts.fetch ?? globalThis.fetch,
  };
}

/** `gpt2`, `openai-community/gpt2`: one optional owner, then a name, hub characters only. */
const REPO_ID = /^(?:[A-Za-z0-9][\w.-]*\/)?[A-Za-z0-9][\w.-]*$/;

export function isRepoId(name: string): boolean {
  return REPO_ID.test(name) && !name.includes("..") && !name.includes("--") && !name.endsWith(".");
}

/** The cache folder of a model repo, exactly as huggingface_hub names it. */
export function repoFolderName(repoId: string): string {
  return `models--${repoId.replace("/", "--")}`;
}

/**
 * The canonical GPT-2 repos moved under organisations; the hub redirects the old ids, and Python
 * caches may hold either folder, so a cache lookup tries both.
 */
const CANONICAL_ALIASES: Record<string, string> = {
  gpt2: "openai-community/gpt2",
  "gpt2-medium": "openai-community/gpt2-medium",
  "gpt2-large": "openai-community/gpt2-large",
  "gpt2-xl": "openai-community/gpt2-xl",
  distilgpt2: "distilbert/distilgpt2",
};

export function repoIdAliases(repoId: string): string[] {
  const forward = CANONICAL_ALIASES[repoId];
  if (forward) return [repoId, forward];
  const back = Object.entries(CANONICAL_ALIASES).find(([, canonical]) => canonical === repoId);
  return back ? [repoId, back[0]] : [repoId];
}

export function isCommitHash(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}
