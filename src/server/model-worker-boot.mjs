// The model worker's entry. In a checkout it runs the TypeScript source: worker threads do not inherit
// tsx's loader when the CLI registered it through the API, so it registers it itself. The published
// package has the compiled model-worker.js beside this file instead.
import { existsSync } from "node:fs";

const source = new URL("./model-worker.ts", import.meta.url);
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(source.href);
} else {
  await import(new URL("./model-worker.js", import.meta.url).href);
}
