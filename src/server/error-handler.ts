/** Maps every failure to `{ error: { message, fix? } }` with a fitting status, never a stack trace. */
import type { FastifyError, FastifyInstance } from "fastify";
import { ApiError } from "./api-error.ts";

const API_DOC = "See docs/server-api.md for each endpoint's request format.";

export function toApiError(err: FastifyError | Error, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as FastifyError;
  if (e.validation) {
    return new ApiError(
      400,
      `Invalid request ${e.validationContext ?? ""}: ${e.message}`.replace(/\s+:/, ":"),
      API_DOC,
    );
  }
  switch (e.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError(
        413,
        `The request body is larger than the ${bodyLimit / 1024} KiB limit.`,
        "Send shorter prompts: no request needs more than a few KiB.",
      );
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ApiError(
        415,
        "The request body is not JSON.",
        "Send a JSON object with Content-Type: application/json.",
      );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new ApiError(
        400,
        "The request body is empty.",
        "Send a JSON object with the fields this endpoint needs.",
      );
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new ApiError(
        400,
        `Malformed JSON in the request body: ${e.message}`,
        "Send a valid JSON object.",
      );
  }
  if (err instanceof SyntaxError || (e.statusCode === 400 && /JSON/i.test(e.message))) {
    return new ApiError(400, `Malformed JSON in the request body: ${e.message}`, "Send a valid JSON object.");
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new ApiError(e.statusCode, e.message);
  return new ApiError(
    500,
    `Internal server error: ${e.message}`,
    "This is a bug in circuitscope; please report it with the request that caused it.",
  );
}

export function installErrorHandlers(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const apiErr = toApiError(err, bodyLimit);
    if (apiErr.status >= 500) request.log.error(err);
    return reply.status(apiErr.status).send(apiErr.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const err = new ApiError(404, `Not found: ${request.method} ${request.url.slice(0, 200)}`, API_DOC);
    return reply.status(404).send(err.toBody());
  });
}
