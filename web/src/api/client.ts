/*
 * The console's only way in: the REST API under /api/v1 on this same origin. The token goes in the Authorization
 * header of each request, never in a URL.
 */

export const API = "/api/v1";

/** An error answer of the API: its status, machine-readable code, message and `file: path: reason` lines. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: readonly string[] = [],
  ) {
    super(message);
    this.name = "ApiFailure";
  }
}

interface ErrorBody {
  code?: unknown;
  message?: unknown;
  problems?: unknown;
}

async function failureOf(response: Response): Promise<ApiFailure> {
  let body: ErrorBody = {};
  try {
    body = (await response.json()) as ErrorBody;
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  const problems = Array.isArray(body.problems) ? body.problems.filter((p) => typeof p === "string") : [];
  return new ApiFailure(
    response.status,
    typeof body.code === "string" ? body.code : `HTTP_${response.status}`,
    typeof body.message === "string" ? body.message : response.statusText || `HTTP ${response.status}`,
    problems,
  );
}

export interface RequestOptions {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  /** JSON-encoded unless it is a string (sent as is with `contentType`). */
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

export class ApiClient {
  constructor(private readonly token: string) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, ...extra };
  }

  async request<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const { method = "GET", body, signal } = options;
    const headers = this.headers({ accept: "application/json" });
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === "string" ? body : JSON.stringify(body);
      headers["content-type"] = options.contentType ?? "application/json";
    }
    const response = await fetch(`${API}${path}`, {
      method,
      headers,
      credentials: "omit",
      cache: "no-store",
      ...(payload !== undefined ? { body: payload } : {}),
      ...(signal ? { signal } : {}),
    });
    if (!response.ok) throw await failureOf(response);
    return (await response.json()) as T;
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>(path, signal ? { signal } : {});
  }
}

/** Reads that need no token. */
export async function publicGet<T>(path: string): Promise<T> {
  const response = await fetch(`${API}${path}`, { credentials: "omit", cache: "no-store" });
  if (!response.ok) throw await failureOf(response);
  return (await response.json()) as T;
}

/** A message for people: the API's message, or what went wrong with the connection. */
export function describeError(error: unknown): string {
  if (error instanceof ApiFailure) return error.message;
  if (error instanceof Error) return `cannot reach the controller: ${error.message}`;
  return String(error);
}
