import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { hubSettings, isRepoId, repoFolderName, repoIdAliases } from "../../src/hub/settings.ts";

const root = mkdtempSync(join(tmpdir(), "cs-hub-settings-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("cache dir: option, then HF_HUB_CACHE, then HF_HOME/hub, then XDG/~/.cache", () => {
  assert.equal(hubSettings({ cacheDir: "/c" }, { HF_HUB_CACHE: "/x" }).cacheDir, "/c");
  assert.equal(hubSettings({}, { HF_HUB_CACHE: "/x", HF_HOME: "/h" }).cacheDir, "/x");
  assert.equal(hubSettings({}, { HF_HOME: "/h" }).cacheDir, "/h/hub");
  assert.equal(hubSettings({}, { XDG_CACHE_HOME: "/xdg" }).cacheDir, "/xdg/huggingface/hub");
  assert.equal(hubSettings({}, {}).cacheDir, join(homedir(), ".cache/huggingface/hub"));
  assert.equal(hubSettings({}, { HF_HOME: "~/hf" }).cacheDir, join(homedir(), "hf/hub"));
});

test("endpoint, revision and offline flag", () => {
  assert.equal(hubSettings({}, {}).endpoint, "https://huggingface.co");
  assert.equal(
    hubSettings({}, { HF_ENDPOINT: "https://mirror.example/" }).endpoint,
    "https://mirror.example",
  );
  assert.equal(hubSettings({ endpoint: "http://a" }, { HF_ENDPOINT: "http://b" }).endpoint, "http://a");
  assert.equal(hubSettings({}, {}).revision, "main");
  for (const v of ["1", "true", "YES", "on"])
    assert.equal(hubSettings({}, { HF_HUB_OFFLINE: v }).offline, true, v);
  for (const v of ["0", "", "false"]) assert.equal(hubSettings({}, { HF_HUB_OFFLINE: v }).offline, false, v);
  assert.equal(hubSettings({ offline: false }, { HF_HUB_OFFLINE: "1" }).offline, false);
});

test("token: option, then HF_TOKEN, then the token file", () => {
  const home = join(root, "home");
  mkdirSync(home);
  writeFileSync(join(home, "token"), "hf_file\n");
  assert.equal(hubSettings({}, { HF_HOME: home }).token, "hf_file");
  assert.equal(hubSettings({}, { HF_HOME: home, HF_TOKEN: "hf_env" }).token, "hf_env");
  assert.equal(hubSettings({ token: "hf_opt" }, { HF_HOME: home, HF_TOKEN: "hf_env" }).token, "hf_opt");
  assert.equal(hubSettings({}, { HF_HOME: join(root, "none") }).token, undefined);
});

test("repo ids, cache folder names and GPT-2 aliases", () => {
  assert.equal(repoFolderName("gpt2"), "models--gpt2");
  assert.equal(repoFolderName("openai-community/gpt2"), "models--openai-community--gpt2");
  for (const ok of ["gpt2", "gpt2-xl", "openai-community/gpt2", "a.b/c_d-1"])
    assert.equal(isRepoId(ok), true, ok);
  for (const bad of ["a/b/c", "../x", "a--b", "bad name", "/abs", ""])
    assert.equal(isRepoId(bad), false, bad);
  assert.deepEqual(repoIdAliases("gpt2"), ["gpt2", "openai-community/gpt2"]);
  assert.deepEqual(repoIdAliases("distilbert/distilgpt2"), ["distilbert/distilgpt2", "distilgpt2"]);
  assert.deepEqual(repoIdAliases("me/mine"), ["me/mine"]);
});
