import { STATUS_CODES } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";
import { TreeWriteError } from "../catalog/tree-write.js";
import { LockTimeoutError } from "../util/file-lock.js";
import { type Problem, formatProblem } from "../validate/problem.js";

/** The body of every error answer: fastify's own shape, plus `problems` as `file: path: reason` lines. */
export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
  problems?: string[];
}

/** An error the API answers with on purpose; `code` is machine-readable, `problems` say file, field and reason. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly problems: readonly Problem[] = [],
  ) {
    super(message);
  }

  toBody(): ErrorBody {
    return errorBody(this.statusCode, this.code, this.message, this.problems);
  }
}

export function errorBody(
  statusCode: number,
  code: string,
  message: string,
  problems: readonly Problem[] = [],
): ErrorBody {
  return {
    statusCode,
    code,
    error: STATUS_CODES[statusCode] ?? "Error",
    message,
    ...(problems.length > 0 ? { problems: problems.map(formatProblem) } : {}),
  };
}

export const badRequest = (message: string, problems: readonly Problem[] = []) =>
  new ApiError(400, "BAD_REQUEST", message, problems);

export const invalidDesiredState = (problems: readonly Problem[]) =>
  new ApiError(
    422,
    "INVALID_DESIRED_STATE",
    `the change would make the desired state invalid (${problems.length} problem(s)); nothing was written`,
    problems,
  );

export const notFound = (message: string) => new ApiError(404, "NOT_FOUND", message);

/** The plugin's error handler: ApiErrors as they are, fastify's 4xx (bad JSON, body too large) in the same shape. */
export function handleError(
  error: Error & { statusCode?: number; code?: string },
  request: FastifyRequest,
  reply: FastifyReply,
) {
  if (error instanceof ApiError) return reply.code(error.statusCode).send(error.toBody());
  if (error instanceof TreeWriteError) {
    return reply
      .code(409)
      .send(errorBody(409, "PATH_REFUSED", "the file cannot be written where it is", [error.problem]));
  }
  if (error instanceof LockTimeoutError) {
    // Another process (the CLI, usually) holds the resource: worth retrying shortly.
    return reply
      .code(503)
      .header("retry-after", "2")
      .send(errorBody(503, "LOCKED", error.message));
  }
  const status = error.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return reply.code(status).send(errorBody(status, error.code ?? "BAD_REQUEST", error.message));
  }
  request.log.error({ err: error }, "API request failed");
  return reply.code(500).send(errorBody(500, "INTERNAL", "internal error; see the controller's log"));
}
