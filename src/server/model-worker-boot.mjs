// Worker threads do not inherit tsx's loader when the CLI registered it through the API, so the model
// worker registers it itself before loading its TypeScript entry.
import { register } from "tsx/esm/api";

register();
await import("./model-worker.ts");
