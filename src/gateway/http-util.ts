import type { IncomingMessage, ServerResponse } from "node:http";
import { ERROR_CODES, type JsonRpcId, errorResponse } from "./jsonrpc.js";

export class BodyTooLargeError extends Error {
  readonly code = "BODY_TOO_LARGE";
}

/** The request body, refusing more than `maxBytes` (the rest is not read). */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes)
    throw new BodyTooLargeError(`body over ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > maxBytes) throw new BodyTooLargeError(`body over ${maxBytes} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** Drops a fetch answer's body unread (a body that cannot be cancelled is dropped all the same). */
export async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}

/**
 * A fetch answer's whole body as text, refusing more than `maxBytes` (declared or read): the rest is not read and
 * the body is cancelled. Read errors propagate as they are.
 */
export async function readResponseBody(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await discard(res);
    throw new BodyTooLargeError(`body over ${maxBytes} bytes`);
  }
  if (!res.body) return "";
  const reader = res.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) throw new BodyTooLargeError(`body over ${maxBytes} bytes`);
      chunks.push(value);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): number {
  if (res.headersSent) {
    res.end();
    return 0;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
  return Buffer.byteLength(text);
}

/** An HTTP error with a JSON-RPC error body, as MCP servers answer transport-level failures. */
export function sendRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
  id: JsonRpcId | null = null,
): void {
  sendJson(res, status, errorResponse(id, code, message), headers);
}

/** Whether the Accept header admits `type` (exact type, `type/*` or `*\/*`; no header admits everything). */
export function accepts(req: IncomingMessage, type: string): boolean {
  const header = req.headers.accept;
  if (header === undefined || header.trim() === "") return true;
  const [major] = type.split("/");
  return header
    .split(",")
    .map((part) => (part.split(";")[0] ?? "").trim().toLowerCase())
    .some((media) => media === type || media === "*/*" || media === `${major}/*`);
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function pathnameOf(req: IncomingMessage): string {
  const url = req.url ?? "/";
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

/**
 * A JSON-RPC POST's body, parsed: checks the Content-Type, reads at most `maxBytes` and parses JSON. Answers 415, 413
 * (closing the connection) or 400 itself and returns `undefined` then; counts the bytes read.
 */
export async function readJsonRpcPost(
  req: IncomingMessage,
  res: ServerResponse,
  maxBytes: number,
  onBytes?: (direction: "in", bytes: number) => void,
): Promise<{ value: unknown; bytes: number } | undefined> {
  const contentType = headerValue(req, "content-type") ?? "";
  if (!contentType.toLowerCase().includes("application/json")) {
    sendRpcError(res, 415, ERROR_CODES.invalidRequest, "Content-Type must be application/json");
    return undefined;
  }
  let body: Buffer;
  try {
    body = await readBody(req, maxBytes);
  } catch (error) {
    if (error instanceof BodyTooLargeError) {
      sendRpcError(res, 413, ERROR_CODES.invalidRequest, error.message, { connection: "close" });
      return undefined;
    }
    throw error;
  }
  onBytes?.("in", body.length);
  try {
    return { value: JSON.parse(body.toString("utf8")) as unknown, bytes: body.length };
  } catch {
    sendRpcError(res, 400, ERROR_CODES.parseError, "parse error: the body is not JSON");
    return undefined;
  }
}
