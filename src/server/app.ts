/**
 * `circuitscope serve`: the interactive explorer's HTTP server. One model lives in a worker thread; a
 * FIFO job queue feeds it one run at a time; fastify serves the JSON API (docs/server-api.md), the
 * page's static files (only from ./public) and the esbuild-bundled front end.
 */
import { readdirSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import Fastify, { type FastifyInstance } from "fastify";
import { readFrontEndGraph } from "../graphs/front-end-check.ts";
import type { FrontEndGraph } from "../graphs/graph-files.ts";
import { defaultTranscoderIndex } from "../neurons/feature-page.ts";
import { type IndexManifest, readManifest } from "../neurons/index-store.ts";
import type { SaeConfig } from "../sae/sae-config.ts";
import { readSaeConfig } from "../sae/saelens-dir.ts";
import { tokenizerFor } from "../tokenizer/load-tokenizer.ts";
import { AccessGuard, installAccessGuard, newSessionToken } from "./access-guard.ts";
import { registerApiRoutes } from "./api-routes.ts";
import { displayName } from "./display-name.ts";
import {
  clientErrorHandler,
  frameworkErrorHandler,
  installErrorHandlers,
  type PathHider,
} from "./error-handler.ts";
import { frontEndBundleJs } from "./front-end-bundle.ts";
import { JobQueue } from "./job-queue.ts";
import { ModelHost } from "./model-host.ts";
import type { ModelLoadSpec, WorkerInfo } from "./model-protocol.ts";
import { RequestChecks } from "./validate.ts";

export const PUBLIC_DIR = fileURLToPath(new URL("./public/", import.meta.url));
export const BODY_LIMIT = 64 * 1024;
/** A quick endpoint (predict, attention, ...) answers within this, waiting in line included. */
export const DEFAULT_QUICK_TIMEOUT_MS = 60_000;

export interface ServerOptions {
  model: ModelLoadSpec;
  /** Directory of a neuron index (`circuitscope index --out DIR`) for neuron lookups. */
  neuronIndex?: string;
  /** An attribution graph file (the front-end JSON of `graph --out`) for the graph panel. */
  graph?: string;
  /** A circuit-tracer transcoder set for the graph task (loaded and checked against the model at start-up). */
  transcoders?: string;
  /** An SAELens SAE directory: feature pages, search and features in predictions (checked at start-up). */
  sae?: string;
  /** A feature index of that SAE (`circuitscope index --sae`). */
  featureIndex?: string;
  /**
   * A transcoder feature index of `transcoders` (`circuitscope index --transcoders`) for their feature pages;
   * default: the set's own `DIR/feature-index` when it has one (the bundled set does).
   */
  transcoderIndex?: string;
  logger?: boolean;
  /** Session token the API requires; omitted → a fresh random one; null → none (`--no-token`). */
  token?: string | null;
  /** Host names answered besides localhost/127.0.0.1/[::1] ("name" or "name:port"). */
  allowedHosts?: string[];
  /** Most jobs queued or running at once (default 16); more get 429. */
  maxQueue?: number;
  quickTimeoutMs?: number;
}

export interface ExplorerServer {
  app: FastifyInstance;
  info: WorkerInfo;
  queue: JobQueue;
  /** The session token (null with `--no-token`): the page's URL carries it as ?token=. */
  token: string | null;
  close(): Promise<void>;
}

export { displayName } from "./display-name.ts";

/**
 * Responses never show this machine's directory layout: known absolute paths become short names (the
 * loaded checkpoint's directory, e.g. a bundled model's, by the name the user gave).
 */
function pathHider(opts: ServerOptions, modelDir: string): PathHider {
  const known: [string, string][] = [
    [process.cwd(), "."],
    [homedir(), "~"],
    [resolve(modelDir), displayName(opts.model.model)],
  ];
  for (const p of [
    opts.model.model,
    opts.neuronIndex,
    opts.graph,
    opts.sae,
    opts.featureIndex,
    opts.transcoders,
    opts.transcoderIndex,
  ])
    if (p !== undefined) known.push([resolve(p), displayName(p)]);
  known.sort((a, b) => b[0].length - a[0].length); // longest first: a model dir inside the cwd keeps its name
  return (text) =>
    known.reduce((t, [path, shown]) => (path.length > 1 ? t.split(path).join(shown) : t), text);
}

export async function createServer(opts: ServerOptions): Promise<ExplorerServer> {
  // A bad --allowed-host fails before the model loads.
  const token = opts.token === undefined ? newSessionToken() : opts.token;
  const guard = new AccessGuard({ token, allowedHosts: opts.allowedHosts, publicPaths: publicPaths() });
  // A wrong --neuron-index fails now, not at the first lookup (the worker opens the index lazily).
  const indexManifest = opts.neuronIndex === undefined ? null : readManifest(opts.neuronIndex);
  // So does a wrong --graph: read and checked whole before the model loads.
  const graph = opts.graph === undefined ? null : readFrontEndGraph(opts.graph);
  // A wrong --sae or --feature-index fails now, before the model loads (the SAE's fit once it has).
  const saeCfg = opts.sae === undefined ? null : readSaeConfig(opts.sae);
  if (opts.featureIndex !== undefined) checkFeatureIndex(opts.featureIndex, saeCfg);
  // A wrong --transcoder-index fails now; its fit to the set once the worker has loaded the set.
  const transcoderIndex = transcoderIndexOf(opts);
  const host = new ModelHost({
    load: opts.model,
    neuronIndex: opts.neuronIndex,
    sae: opts.sae,
    featureIndex: opts.featureIndex,
    transcoders: opts.transcoders,
    transcoderIndex: transcoderIndex?.dir,
  });
  const bundle = frontEndBundleJs(); // built while the model loads
  let info: WorkerInfo;
  try {
    info = await host.ready;
    if (indexManifest) checkIndexFitsModel(opts.neuronIndex as string, indexManifest, opts.model.model, info);
    if (graph) checkGraphFitsModel(opts.graph as string, graph, opts.model.model, info);
    if (transcoderIndex) checkTranscoderIndexFitsSet(transcoderIndex, opts.transcoders as string, info);
    await bundle;
  } catch (err) {
    await host.close();
    throw err;
  }
  const queue = new JobQueue((kind, params, ctx) => host.run(kind, params, ctx), {
    maxQueue: opts.maxQueue,
  });
  const hidePaths = pathHider(opts, info.dir);
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    logger: opts.logger ?? false,
    // Node would answer a request without Host with an empty 400; the access guard answers it in the API's shape.
    http: { requireHostHeader: false },
    frameworkErrors: frameworkErrorHandler(guard, hidePaths),
    clientErrorHandler,
    // Reject unknown fields and wrong types instead of silently dropping or coercing them.
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false },
    },
  });
  // Only JSON bodies: without this fastify parses text/plain and the schema answers 400 instead of 415.
  app.removeContentTypeParser("text/plain");
  installErrorHandlers(app, { bodyLimit: BODY_LIMIT, hidePaths });
  installAccessGuard(app, guard); // first: refused requests reach nothing else
  registerApiRoutes(app, {
    modelName: displayName(opts.model.model),
    info,
    queue,
    quickTimeoutMs: opts.quickTimeoutMs ?? DEFAULT_QUICK_TIMEOUT_MS,
    // The model's own tokenizer: requests are checked (lengths, single tokens) the way the model will read them.
    checks: new RequestChecks(info.cfg, tokenizerFor(info.dir, info.cfg)),
    neuronIndex: opts.neuronIndex,
    graph,
    featureIndex: opts.featureIndex,
    transcoderIndex: transcoderIndex !== null,
  });
  app.get("/app.js", async (_req, reply) => reply.type("text/javascript; charset=utf-8").send(await bundle));
  // @fastify/static resolves paths inside PUBLIC_DIR only (no dotfiles, no `..`); nothing else is on disk.
  await app.register(fastifyStatic, {
    root: PUBLIC_DIR,
    prefix: "/",
    index: ["index.html"],
    dotfiles: "deny",
  });
  app.addHook("onClose", async () => {
    queue.cancelAll();
    await host.close();
  });
  return { app, info, queue, token, close: () => app.close() };
}

/** The page's own files, served without the session token: they hold no data. */
function publicPaths(): string[] {
  const files = readdirSync(PUBLIC_DIR).filter((f) => !f.startsWith("."));
  return ["/", "/app.js", ...files.map((f) => `/${f}`)];
}

/** A feature index needs the SAE it was built for (`index --sae DIR`), and is refused for a neuron index. */
function checkFeatureIndex(dir: string, saeCfg: SaeConfig | null): void {
  if (!saeCfg) throw new Error(`--feature-index ${dir} needs the SAE it was built with: add --sae DIR`);
  const indexed = readManifest(dir).settings.sae;
  if (!indexed)
    throw new Error(
      `${dir} is a neuron index, not a feature index: pass it as --neuron-index, or build a feature index with circuitscope index --sae DIR --corpus C --out DIR`,
    );
  if (indexed.dSae !== saeCfg.dSae || indexed.hook !== saeCfg.hookName)
    throw new Error(
      `Feature index ${dir} was built for an SAE with ${indexed.dSae} features at ${indexed.hook}, but --sae has ${saeCfg.dSae} at ${saeCfg.hookName}: pass the index built with this SAE`,
    );
}

/** The transcoder feature index to serve pages from: the one given, else the set's own; checked to be one. */
function transcoderIndexOf(opts: ServerOptions): { dir: string; manifest: IndexManifest } | null {
  if (opts.transcoders === undefined) {
    if (opts.transcoderIndex === undefined) return null;
    throw new Error(
      `--transcoder-index ${opts.transcoderIndex} needs the transcoder set it was built with: add --transcoders DIR`,
    );
  }
  const dir = opts.transcoderIndex ?? defaultTranscoderIndex(opts.transcoders);
  if (dir === null) return null;
  const manifest = readManifest(dir);
  if (!manifest.settings.transcoders)
    throw new Error(
      `--transcoder-index ${dir} is ${manifest.settings.sae ? "an SAE feature index" : "a neuron index"}, not a transcoder feature index: ` +
        `build one with circuitscope index --model M --transcoders ${opts.transcoders} --corpus C --out DIR`,
    );
  return { dir, manifest };
}

/** A transcoder feature index must be of the served set: the same input hook, widths and layers. */
function checkTranscoderIndexFitsSet(
  index: { dir: string; manifest: IndexManifest },
  setName: string,
  info: WorkerInfo,
): void {
  const built = index.manifest.settings.transcoders!;
  const set = info.transcoders!;
  const layers = index.manifest.settings.layers;
  const misfit = set.layers.find((t) => !layers.includes(t.layer) || t.dTranscoder !== built.dTranscoder);
  if (built.inputHook !== set.featureInputHook || misfit)
    throw new Error(
      `Transcoder feature index ${index.dir} was built for ${built.path} (${built.dTranscoder} features per layer at ${built.inputHook}, layers ${layers.join(", ")}), ` +
        `which is not --transcoders ${setName}${misfit ? ` (its layer ${misfit.layer} has ${misfit.dTranscoder} features)` : ` (it reads ${set.featureInputHook})`}: ` +
        `pass the index built with this set (--transcoder-index DIR), or build one with circuitscope index --transcoders ${setName} --corpus C --out DIR`,
    );
}

function checkIndexFitsModel(dir: string, manifest: IndexManifest, model: string, info: WorkerInfo): void {
  const { dMlp, layers } = manifest.settings;
  if (dMlp !== info.cfg.dMlp || layers.some((l) => l >= info.cfg.nLayers)) {
    throw new Error(
      `Neuron index ${dir} was built with model ${manifest.settings.model} (d_mlp ${dMlp}, layers ${layers.join(", ")}) ` +
        `but ${model} has d_mlp ${info.cfg.dMlp} and ${info.cfg.nLayers} layers: pass the index built with this model, ` +
        `or build one with: circuitscope index --model ${model} --corpus C --out DIR`,
    );
  }
}

/** A graph's layers must be the model's: features and errors below n_layers, logits at n_layers + 1. */
function checkGraphFitsModel(file: string, graph: FrontEndGraph, model: string, info: WorkerInfo): void {
  const n = info.cfg.nLayers;
  const misfit = graph.nodes.find((node) =>
    node.feature_type === "embedding"
      ? false
      : node.feature_type === "logit"
        ? Number(node.layer) !== n + 1
        : Number(node.layer) >= n,
  );
  if (misfit) {
    throw new Error(
      `Graph ${file} does not fit ${model} (${n} layers): node ${misfit.node_id} is at layer ${misfit.layer}. ` +
        `Pass a graph computed with this model: circuitscope graph --model ${model} --transcoders DIR --prompt T --out graph.json`,
    );
  }
}
