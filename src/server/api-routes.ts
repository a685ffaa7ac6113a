/** The JSON API (documented in docs/server-api.md). Handlers validate, then queue model runs. */
import type { FastifyInstance, FastifyReply } from "fastify";
import { ApiError } from "./api-error.ts";
import { JobCancelledError, type JobQueue, type JobView } from "./job-queue.ts";
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
}

interface PromptBody {
  prompt: string;
}
interface PredictBody extends PromptBody {
  topK: number;
  answer?: string;
  wrong?: string;
}
interface AttentionBody extends PromptBody {
  layer: number;
  head: number;
}
interface AnswerBody extends PromptBody {
  answer: string;
  wrong: string;
}
interface PatchingJobBody {
  kind: "patching";
  clean: string;
  corrupted: string;
  answer: string;
  wrong: string;
  target: string;
}

/** Runs a model task through the queue and waits for it; task failures are the user's input errors. */
async function runNow(ctx: ApiContext, kind: string, params: unknown): Promise<unknown> {
  try {
    return await ctx.queue.run(kind, params);
  } catch (err) {
    if (err instanceof JobCancelledError)
      throw new ApiError(409, "The run was cancelled (the server is shutting down?).");
    const e = err as Error & { fix?: string };
    throw new ApiError(400, e.message, e.fix);
  }
}

function writeEvent(reply: FastifyReply, view: JobView): void {
  reply.raw.write(`data: ${JSON.stringify(view)}\n\n`);
}

function isFinished(view: JobView): boolean {
  return view.status === "done" || view.status === "failed" || view.status === "cancelled";
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
  }));

  app.post<{ Body: PromptBody }>("/api/tokens", { schema: { body: schemas.tokensBody } }, async (req) => {
    const tokens = ctx.checks.promptTokens(req.body.prompt);
    return { tokens, strTokens: ctx.checks.tokenizer.toStrTokens(tokens), nCtx: cfg.nCtx };
  });

  app.post<{ Body: PredictBody }>("/api/predict", { schema: { body: schemas.predictBody } }, async (req) => {
    const { prompt, topK, answer, wrong } = req.body;
    ctx.checks.promptTokens(prompt);
    if (answer !== undefined) ctx.checks.singleToken(answer, "answer");
    if (wrong !== undefined) ctx.checks.singleToken(wrong, "wrong token");
    return runNow(ctx, "predict", { prompt, topK, answer, wrong });
  });

  app.post<{ Body: AttentionBody }>(
    "/api/attention",
    { schema: { body: schemas.attentionBody } },
    async (req) => {
      const { prompt, layer, head } = req.body;
      ctx.checks.promptTokens(prompt);
      ctx.checks.layer(layer);
      ctx.checks.head(head);
      return runNow(ctx, "attention", { prompt, layer, head });
    },
  );

  app.post<{ Body: AnswerBody }>(
    "/api/attribution",
    { schema: { body: schemas.attributionBody } },
    async (req) => {
      const { prompt, answer, wrong } = req.body;
      ctx.checks.promptTokens(prompt);
      ctx.checks.singleToken(answer, "answer");
      ctx.checks.singleToken(wrong, "wrong token");
      return runNow(ctx, "attribution", { prompt, answer, wrong });
    },
  );

  app.get<{ Params: { layer: string; neuron: string }; Querystring: { text?: string } }>(
    "/api/neurons/:layer/:neuron",
    { schema: { params: schemas.neuronParams, querystring: schemas.neuronQuery } },
    async (req) => {
      const layer = ctx.checks.pathIndex(req.params.layer, "layer");
      const neuron = ctx.checks.pathIndex(req.params.neuron, "neuron");
      const text = req.query.text;
      if (text !== undefined) ctx.checks.promptTokens(text, "text");
      return runNow(ctx, "neuron", { layer, neuron, text });
    },
  );

  // Long runs are background jobs: 202 with the job, then poll GET /api/jobs/:id or follow /events.
  app.post<{ Body: PatchingJobBody }>(
    "/api/jobs",
    { schema: { body: schemas.patchingJobBody } },
    async (req, reply) => {
      const { clean, corrupted, answer, wrong, target } = req.body;
      if (!EXPLORER_TARGETS.includes(target)) {
        throw new ApiError(
          400,
          `Unknown patching target "${target}".`,
          `Use one of: ${EXPLORER_TARGETS.join(", ")}.`,
        );
      }
      const cleanTokens = ctx.checks.promptTokens(clean, "clean prompt");
      const corruptedTokens = ctx.checks.promptTokens(corrupted, "corrupted prompt");
      ctx.checks.samePositions(cleanTokens, corruptedTokens);
      ctx.checks.singleToken(answer, "answer");
      ctx.checks.singleToken(wrong, "wrong token");
      const view = ctx.queue.submit("patching", { clean, corrupted, answer, wrong, target });
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
      req.raw.on("close", () => ctx.queue.events.off("update", onUpdate));
    },
  );
}
