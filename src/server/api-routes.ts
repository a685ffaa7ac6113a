/** The JSON API (documented in docs/server-api.md). Handlers validate, then queue model runs. */
import type { FastifyInstance, FastifyReply } from "fastify";
import type { FrontEndGraph } from "../graphs/graph-files.ts";
import { DEFAULT_EDGE_THRESHOLD, DEFAULT_NODE_THRESHOLD } from "../graphs/prune.ts";
import { ApiError } from "./api-error.ts";
import { JobCancelledError, type JobQueue, type JobView, QueueFullError } from "./job-queue.ts";
import type { WorkerInfo } from "./model-protocol.ts";
import { EXPLORER_TARGETS } from "./patch-targets.ts";
import * as schemas from "./schemas.ts";
import type { RequestChecks } from "./validate.ts";

export interface ApiContext {
  modelName: string;
  info: WorkerInfo;
  queue: JobQueue;
  checks: RequestChecks;
  neuronIndex?: string;
  /** The attribution graph given with `serve --graph`, checked; null without one. */
  graph: FrontEndGraph | null;
  featureIndex?: string;
  /** Whether the transcoders (`serve --transcoders`) have a feature index to serve their feature pages from. */
  transcoderIndex: boolean;
  /** How long a quick endpoint may take, waiting in line included. */
  quickTimeoutMs: number;
}

/** Seconds a refused client is asked to wait: long enough for a few quick runs to drain. */
export const RETRY_AFTER_SECONDS = 5;

interface PromptBody {
  prompt: string;
}
interface PredictBody extends PromptBody {
  topK: number;
  answer?: string;
  wrong?: string;
  featurePos?: number;
}
interface FeatureSearchBody {
  token?: string;
  text?: string;
  top: number;
}
interface AttentionBody extends PromptBody {
  layer?: number;
  head?: number;
  heads?: "all";
}
interface AnswerBody extends PromptBody {
  answer: string;
  wrong: string;
}
interface CircuitJobBody {
  kind: "circuit";
  clean: string;
  corrupted: string;
  answer: string;
  wrong: string;
  method?: "eap" | "eap-ig";
  faithfulness?: number;
}
interface GraphJobBody {
  kind: "graph";
  prompt: string;
  targets?: string[];
  nodeThreshold?: number;
  edgeThreshold?: number;
}
interface PatchingJobBody {
  kind: "patching";
  clean: string;
  corrupted: string;
  answer: string;
  wrong: string;
  target: string;
}

function queueFull(err: QueueFullError): ApiError {
  return new ApiError(
    429,
    `${err.message} The explorer runs one model job at a time and keeps a short line.`,
    `Wait for queued jobs to finish (or cancel them: DELETE /api/jobs/ID) and retry in ${RETRY_AFTER_SECONDS} s; circuitscope serve --max-queue N allows a longer line.`,
  ).withHeader("retry-after", String(RETRY_AFTER_SECONDS));
}

function submit(ctx: ApiContext, kind: string, params: unknown): JobView {
  try {
    return ctx.queue.submit(kind, params);
  } catch (err) {
    throw err instanceof QueueFullError ? queueFull(err) : err;
  }
}

/**
 * Runs a model task through the queue and waits for it; task failures are the user's input errors. The
 * run is cancelled when the client disconnects (nobody would read it) or it exceeds the time limit.
 */
async function runNow(ctx: ApiContext, reply: FastifyReply, kind: string, params: unknown): Promise<unknown> {
  const giveUp = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    giveUp.abort();
  }, ctx.quickTimeoutMs);
  const onClose = () => giveUp.abort();
  reply.raw.once("close", onClose);
  try {
    return await ctx.queue.run(kind, params, giveUp.signal);
  } catch (err) {
    if (err instanceof QueueFullError) throw queueFull(err);
    if (err instanceof JobCancelledError && timedOut)
      throw new ApiError(
        503,
        `The ${kind} run did not finish within ${ctx.quickTimeoutMs / 1000} s (waiting in line included), so it was cancelled.`,
        "Wait for running patching jobs to finish or cancel them, then retry; a shorter prompt also runs faster.",
      ).withHeader("retry-after", String(RETRY_AFTER_SECONDS));
    if (err instanceof JobCancelledError)
      throw new ApiError(
        409,
        "The run was cancelled (the client went away, or the server is shutting down).",
      );
    const e = err as Error & { fix?: string };
    throw new ApiError(400, e.message, e.fix);
  } finally {
    clearTimeout(timer);
    reply.raw.off("close", onClose);
  }
}

function writeEvent(reply: FastifyReply, view: JobView): void {
  reply.raw.write(`data: ${JSON.stringify(view)}\n\n`);
}

function isFinished(view: JobView): boolean {
  return view.status === "done" || view.status === "failed" || view.status === "cancelled";
}

/** A graph job: the server's transcoders, a prompt within MAX_GRAPH_TOKENS, single-token targets. */
function submitGraph(ctx: ApiContext, body: GraphJobBody): JobView {
  if (!ctx.info.tasks.includes("graph"))
    throw new ApiError(
      400,
      "This explorer was started without transcoders, so it cannot compute attribution graphs.",
      "Start it with circuitscope serve --model M --transcoders DIR (a circuit-tracer transcoder set for this model).",
    );
  ctx.checks.graphPromptTokens(body.prompt);
  const targets = body.targets ?? [];
  const ids = targets.map((t, k) => ctx.checks.singleToken(t, `target ${k + 1}`));
  if (new Set(ids).size !== ids.length)
    throw new ApiError(400, "A target token is named twice.", "Name each logit target once.");
  return submit(ctx, "graph", {
    prompt: body.prompt,
    targets,
    nodeThreshold: body.nodeThreshold ?? DEFAULT_NODE_THRESHOLD,
    edgeThreshold: body.edgeThreshold ?? DEFAULT_EDGE_THRESHOLD,
    modelName: ctx.modelName,
  });
}

/**
 * The (layer, feature) of a transcoder feature page request, checked against the served set before anything
 * is queued: 404 without transcoders or without their feature index (with how to get one), 400 outside the set.
 */
function transcoderFeatureOf(ctx: ApiContext, params: { layer: string; feature: string }) {
  const set = ctx.info.transcoders;
  if (!set)
    throw new ApiError(
      404,
      "This explorer has no transcoders, so it has no transcoder features.",
      "Restart it with circuitscope serve --model M --transcoders DIR (a circuit-tracer transcoder set for this model).",
    );
  if (!ctx.transcoderIndex)
    throw new ApiError(
      404,
      "This explorer has no feature index of its transcoders, so it has no transcoder feature pages.",
      `Build one with circuitscope index --model ${ctx.modelName} --transcoders DIR --corpus C --out DIR/feature-index ` +
        "(DIR/feature-index is found by itself), or pass one with serve --transcoder-index INDEX.",
    );
  const layers = set.layers.map((t) => t.layer);
  const tc = set.layers.find((t) => String(t.layer) === params.layer);
  if (!tc)
    throw new ApiError(
      400,
      `The layer in the URL, ${JSON.stringify(params.layer)}, is not a layer of the transcoders.`,
      `Use a layer from ${layers[0]} to ${layers[layers.length - 1]}, e.g. /api/transcoder-features/${layers[0]}/12.`,
    );
  const feature = Number(params.feature);
  if (!/^\d+$/.test(params.feature) || feature >= tc.dTranscoder)
    throw new ApiError(
      400,
      `The feature in the URL, ${JSON.stringify(params.feature)}, is not a feature of layer ${tc.layer}'s transcoder.`,
      `Use a feature from 0 to ${tc.dTranscoder - 1}, e.g. /api/transcoder-features/${tc.layer}/12.`,
    );
  return { layer: tc.layer, feature };
}

export function registerApiRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { cfg } = ctx.info;

  app.get("/api/info", async () => ({
    model: ctx.modelName,
    cfg: {
      nLayers: cfg.nLayers,
      nHeads: cfg.nHeads,
      dModel: cfg.dModel,
      dMlp: cfg.dMlp,
      nCtx: cfg.nCtx,
      dVocab: cfg.dVocab,
    },
    features: ctx.info.tasks,
    patchTargets: EXPLORER_TARGETS,
    neuronIndex: ctx.neuronIndex !== undefined,
    graph: ctx.graph !== null,
    sae: ctx.info.sae ?? null,
    featureIndex: ctx.featureIndex !== undefined,
    transcoderIndex: ctx.transcoderIndex,
  }));

  app.get("/api/graph", async () => {
    if (!ctx.graph)
      throw new ApiError(
        404,
        "This explorer was started without an attribution graph.",
        "Start it with circuitscope serve --model M --graph graph.json (a file written by circuitscope graph --out).",
      );
    return ctx.graph;
  });

  /** Feature requests need the SAE the server was started with. */
  const requireSae = (): { hook: string; dSae: number } => {
    if (!ctx.info.sae)
      throw new ApiError(
        404,
        "This explorer has no SAE, so it has no features.",
        "Restart it with circuitscope serve --model M --sae DIR (an SAELens directory).",
      );
    return ctx.info.sae;
  };

  app.get<{ Params: { feature: string }; Querystring: { text?: string } }>(
    "/api/features/:feature",
    { schema: { params: schemas.featureParams, querystring: schemas.neuronQuery } },
    async (req, reply) => {
      const { dSae } = requireSae();
      const text = req.params.feature;
      const feature = Number(text);
      if (!/^\d+$/.test(text) || feature >= dSae)
        throw new ApiError(
          400,
          `The feature in the URL, ${JSON.stringify(text)}, is not a feature of this SAE.`,
          `Use a feature from 0 to ${dSae - 1}, e.g. /api/features/12.`,
        );
      if (req.query.text !== undefined) ctx.checks.promptTokens(req.query.text, "text");
      return runNow(ctx, reply, "feature", { feature, text: req.query.text });
    },
  );

  app.get<{ Params: { layer: string; feature: string }; Querystring: { text?: string } }>(
    "/api/transcoder-features/:layer/:feature",
    { schema: { params: schemas.transcoderFeatureParams, querystring: schemas.neuronQuery } },
    async (req, reply) => {
      const { layer, feature } = transcoderFeatureOf(ctx, req.params);
      if (req.query.text !== undefined) ctx.checks.promptTokens(req.query.text, "text");
      return runNow(ctx, reply, "transcoderFeature", { layer, feature, text: req.query.text });
    },
  );

  app.post<{ Body: FeatureSearchBody }>(
    "/api/features/search",
    { schema: { body: schemas.featureSearchBody } },
    async (req, reply) => {
      requireSae();
      const { token, text, top } = req.body;
      if ((token === undefined) === (text === undefined))
        throw new ApiError(
          400,
          "Feature search takes either a token or a text.",
          'Send {"token": " she"} for the features that raise a token, or {"text": "..."} for the features most active on a text.',
        );
      if (token !== undefined) ctx.checks.singleToken(token, "token");
      else ctx.checks.promptTokens(text!, "text");
      return runNow(ctx, reply, "featureSearch", { token, text, top });
    },
  );

  app.post<{ Body: PromptBody }>("/api/tokens", { schema: { body: schemas.tokensBody } }, async (req) => {
    const tokens = ctx.checks.promptTokens(req.body.prompt);
    return { tokens, strTokens: ctx.checks.tokenizer.toStrTokens(tokens), nCtx: cfg.nCtx };
  });

  app.post<{ Body: PredictBody }>(
    "/api/predict",
    { schema: { body: schemas.predictBody } },
    async (req, reply) => {
      const { prompt, topK, answer, wrong, featurePos } = req.body;
      const tokens = ctx.checks.promptTokens(prompt);
      if (answer !== undefined) ctx.checks.singleToken(answer, "answer");
      if (wrong !== undefined) ctx.checks.singleToken(wrong, "wrong token");
      if (featurePos !== undefined) {
        requireSae();
        if (featurePos >= tokens.length)
          throw new ApiError(
            400,
            `featurePos ${featurePos} is past the prompt's ${tokens.length} tokens.`,
            `Use a position from 0 to ${tokens.length - 1} (0 is the BOS token).`,
          );
      }
      return runNow(ctx, reply, "predict", { prompt, topK, answer, wrong, featurePos });
    },
  );

  app.post<{ Body: AttentionBody }>(
    "/api/attention",
    { schema: { body: schemas.attentionBody } },
    async (req, reply) => {
      const { prompt, layer, head, heads } = req.body;
      const tokens = ctx.checks.promptTokens(prompt);
      if (heads === "all") {
        if (layer !== undefined || head !== undefined)
          throw new ApiError(
            400,
            'Give either heads: "all" or one head (layer and head), not both.',
            'Drop layer and head for every head, or drop heads: "all" for one head.',
          );
        ctx.checks.allHeadsFit(tokens.length);
        return runNow(ctx, reply, "attention", { prompt, heads });
      }
      if (layer === undefined && head === undefined)
        throw new ApiError(
          400,
          'The request names no head: it has neither layer and head nor heads: "all".',
          'Give layer and head, e.g. {"layer": 1, "head": 2}, or heads: "all" for every head.',
        );
      if (layer === undefined || head === undefined)
        throw new ApiError(
          400,
          `One head needs both layer and head (got only ${layer === undefined ? "head" : "layer"}).`,
          'Give layer and head, e.g. {"layer": 1, "head": 2}, or heads: "all" for every head.',
        );
      ctx.checks.layer(layer);
      ctx.checks.head(head);
      return runNow(ctx, reply, "attention", { prompt, layer, head });
    },
  );

  app.post<{ Body: AnswerBody }>(
    "/api/attribution",
    { schema: { body: schemas.attributionBody } },
    async (req, reply) => {
      const { prompt, answer, wrong } = req.body;
      ctx.checks.promptTokens(prompt);
      ctx.checks.answerAndWrong(answer, wrong);
      return runNow(ctx, reply, "attribution", { prompt, answer, wrong });
    },
  );

  app.get<{ Params: { layer: string; neuron: string }; Querystring: { text?: string } }>(
    "/api/neurons/:layer/:neuron",
    { schema: { params: schemas.neuronParams, querystring: schemas.neuronQuery } },
    async (req, reply) => {
      const layer = ctx.checks.pathIndex(req.params.layer, "layer");
      const neuron = ctx.checks.pathIndex(req.params.neuron, "neuron");
      const text = req.query.text;
      if (text !== undefined) ctx.checks.promptTokens(text, "text");
      return runNow(ctx, reply, "neuron", { layer, neuron, text });
    },
  );

  // Long runs are background jobs: 202 with the job, then poll GET /api/jobs/:id or follow /events.
  app.post<{ Body: PatchingJobBody | CircuitJobBody | GraphJobBody }>(
    "/api/jobs",
    { schema: { body: schemas.jobBody } },
    async (req, reply) => {
      if (req.body.kind === "graph") return reply.status(202).send(submitGraph(ctx, req.body));
      const { clean, corrupted, answer, wrong } = req.body;
      if (req.body.kind === "patching" && !EXPLORER_TARGETS.includes(req.body.target)) {
        throw new ApiError(
          400,
          `Unknown patching target "${req.body.target}".`,
          `Use one of: ${EXPLORER_TARGETS.join(", ")}.`,
        );
      }
      const cleanTokens = ctx.checks.promptTokens(clean, "clean prompt");
      const corruptedTokens = ctx.checks.promptTokens(corrupted, "corrupted prompt");
      ctx.checks.samePositions(cleanTokens, corruptedTokens);
      ctx.checks.answerAndWrong(answer, wrong);
      const view =
        req.body.kind === "patching"
          ? submit(ctx, "patching", { clean, corrupted, answer, wrong, target: req.body.target })
          : submit(ctx, "circuit", {
              clean,
              corrupted,
              answer,
              wrong,
              method: req.body.method ?? "eap-ig",
              faithfulness: req.body.faithfulness ?? 0.8,
            });
      return reply.status(202).send(view);
    },
  );

  app.get<{ Params: { id: string } }>(
    "/api/jobs/:id",
    { schema: { params: schemas.jobIdParams } },
    async (req) => {
      const view = ctx.queue.get(req.params.id);
      if (!view)
        throw new ApiError(
          404,
          `No job ${req.params.id}.`,
          "Jobs are kept for a while after they finish; submit it again.",
        );
      return view;
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/api/jobs/:id",
    { schema: { params: schemas.jobIdParams } },
    async (req) => {
      const { id } = req.params;
      const view = ctx.queue.get(id);
      if (!view) throw new ApiError(404, `No job ${id}.`);
      if (isFinished(view)) throw new ApiError(409, `Job ${id} has already finished (${view.status}).`);
      ctx.queue.cancel(id);
      return (await ctx.queue.settled(id)) ?? view;
    },
  );

  // Server-sent events: the job's state now, then every change, then the stream ends when it finishes.
  // A stream is a watcher: when the last one closes before the job ends, nobody is left to see it, so the
  // job is cancelled (a page closed mid-run does not leave the model busy).
  app.get<{ Params: { id: string } }>(
    "/api/jobs/:id/events",
    { schema: { params: schemas.jobIdParams } },
    async (req, reply) => {
      const { id } = req.params;
      const first = ctx.queue.get(id);
      if (!first) throw new ApiError(404, `No job ${id}.`);
      reply.hijack();
      reply.raw.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      writeEvent(reply, first);
      if (isFinished(first)) return reply.raw.end();
      const onUpdate = (view: JobView) => {
        if (view.id !== id) return;
        writeEvent(reply, isFinished(view) ? (ctx.queue.get(id) ?? view) : view);
        if (isFinished(view)) stop();
      };
      const stop = () => {
        ctx.queue.events.off("update", onUpdate);
        reply.raw.end();
      };
      ctx.queue.events.on("update", onUpdate);
      const release = ctx.queue.watch(id);
      reply.raw.on("close", () => {
        ctx.queue.events.off("update", onUpdate);
        release();
      });
    },
  );
}
