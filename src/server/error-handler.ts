/**
 * Maps every failure to `{ error: { message, fix? } }` with a fitting status, never a stack trace and
 * never an absolute path: route errors, the framework's own (bad URL encoding, unparsable HTTP) and 404s.
 */
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type AccessGuard, NO_FRAMING_HEADERS } from "./access-guard.ts";
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

/** Replaces the server's own absolute paths (model directory, index, working directory) in a message. */
export type PathHider = (text: string) => string;

function send(reply: FastifyReply, err: ApiError, hidePaths: PathHider) {
  const body = err.toBody();
  body.error.message = hidePaths(body.error.message);
  if (body.error.fix !== undefined) body.error.fix = hidePaths(body.error.fix);
  return reply.status(err.status).headers(err.headers).send(body);
}

export interface ErrorHandling {
  bodyLimit: number;
  hidePaths: PathHider;
}

export function installErrorHandlers(app: FastifyInstance, opts: ErrorHandling): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const apiErr = toApiError(err, opts.bodyLimit);
    if (apiErr.status >= 500) request.log.error(err);
    return send(reply, apiErr, opts.hidePaths);
  });
  app.setNotFoundHandler((request, reply) => {
    const err = new ApiError(404, `Not found: ${request.method} ${request.url.slice(0, 200)}`, API_DOC);
    return send(reply, err, opts.hidePaths);
  });
}

/**
 * Fastify's `frameworkErrors` option: errors raised while routing, before any hook (FST_ERR_BAD_URL for
 * a malformed percent-encoding). The access guard still goes first, so a foreign Host learns nothing more.
 */
export function frameworkErrorHandler(guard: AccessGuard, hidePaths: PathHider) {
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    reply.headers(NO_FRAMING_HEADERS); // the onSend hook is not run for these
    const refusal = guard.refusal(req);
    if (refusal) return send(reply, refusal, hidePaths);
    const apiErr =
      err.code === "FST_ERR_BAD_URL"
        ? new ApiError(
            400,
            "Bad request path: invalid percent-encoding in the URL.",
            "Use the page's own links, or encode the URL's special characters correctly.",
          )
        : toApiError(err, 0);
    return send(reply, apiErr, hidePaths);
  };
}

/** Fastify's `clientErrorHandler`: HTTP the server could not even parse, answered on the raw socket. */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || !socket.writable) return;
  const status =
    err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
  const message =
    status === 431
      ? "The request headers are too large."
      : status === 408
        ? "The request took too long to arrive."
        : "The request is not valid HTTP.";
  const body = JSON.stringify(new ApiError(status, message, API_DOC).toBody());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
