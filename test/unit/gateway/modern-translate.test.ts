// The pure parts of MCP 2026-07-28 on the gateway: era routing, the request envelope, result translation and the
// subscriptions/listen filter.
import { describe, expect, it } from "vitest";
import { legacyParams, parseModernPost } from "../../../src/gateway/modern/envelope.js";
import {
  filterAccepts,
  honoredFilter,
  parseListenFilter,
  stampSubscription,
} from "../../../src/gateway/modern/listen.js";
import {
  completeResult,
  discoverResult,
  inputRequiredResult,
} from "../../../src/gateway/modern/translate.js";
import { eraOfHeader } from "../../../src/gateway/modern/versions.js";

const V = "io.modelcontextprotocol/protocolVersion";
const CAPS = "io.modelcontextprotocol/clientCapabilities";
const INFO = "io.modelcontextprotocol/clientInfo";
const INIT = {
  protocolVersion: "2025-06-18",
  capabilities: { tools: { listChanged: true }, resources: { subscribe: true }, tasks: { list: {} } },
  serverInfo: { name: "legacy", version: "1" },
  instructions: "be nice",
};

const request = (method: string, params: Record<string, unknown>, version = "2026-07-28") => ({
  jsonrpc: "2.0",
  id: 5,
  method,
  params: {
    ...params,
    _meta: {
      [V]: version,
      [CAPS]: { elicitation: {} },
      [INFO]: { name: "c", version: "2" },
      progressToken: 9,
    },
  },
});

describe("eraOfHeader", () => {
  it("routes no header and session-based revisions the legacy way, everything else to the modern front", () => {
    expect(eraOfHeader(undefined)).toBe("legacy");
    expect(eraOfHeader("2025-06-18")).toBe("legacy");
    expect(eraOfHeader("2025-11-25")).toBe("legacy");
    expect(eraOfHeader("2026-07-28")).toBe("modern");
    expect(eraOfHeader("2099-01-01")).toBe("modern");
    expect(eraOfHeader("1999-01-01")).toBe("modern");
  });
});

describe("parseModernPost", () => {
  const headers = { protocolVersion: "2026-07-28", method: "tools/call" };

  it("maps the envelope away and keeps progress token, arguments and foreign _meta keys", () => {
    const parsed = parseModernPost(
      headers,
      request("tools/call", { name: "echo", arguments: { text: "x" } }),
    );
    expect(parsed).toEqual({
      kind: "request",
      request: {
        id: 5,
        method: "tools/call",
        version: "2026-07-28",
        clientCapabilities: { elicitation: {} },
        legacyParams: { name: "echo", arguments: { text: "x" }, _meta: { progressToken: 9 } },
        requestState: undefined,
        inputResponses: undefined,
      },
    });
  });

  it("takes the retry fields out of the params", () => {
    const parsed = parseModernPost(
      headers,
      request("tools/call", { name: "ask", requestState: "s1", inputResponses: { k: { action: "accept" } } }),
    );
    expect(parsed.kind === "request" && parsed.request).toMatchObject({
      requestState: "s1",
      inputResponses: { k: { action: "accept" } },
      legacyParams: { name: "ask", _meta: { progressToken: 9 } },
    });
  });

  it("answers an unsupported revision with -32022, the supported list and the requested one", () => {
    const parsed = parseModernPost(
      { protocolVersion: "2099-01-01", method: "tools/list" },
      request("tools/list", {}, "2099-01-01"),
    );
    expect(parsed).toMatchObject({
      kind: "error",
      status: 400,
      id: 5,
      error: {
        code: -32022,
        data: {
          requested: "2099-01-01",
          supported: expect.arrayContaining(["2026-07-28", "2025-06-18"]) as unknown,
        },
      },
    });
  });

  it("refuses header/body disagreements (-32020), a missing envelope (-32602), batches and responses", () => {
    expect(
      parseModernPost({ protocolVersion: "2026-07-28", method: "tools/list" }, request("tools/call", {})),
    ).toMatchObject({
      error: { code: -32020 },
    });
    expect(
      parseModernPost({ protocolVersion: "2025-11-25", method: undefined }, request("tools/list", {})),
    ).toMatchObject({
      error: { code: -32020 },
    });
    expect(
      parseModernPost(
        { protocolVersion: "2026-07-28", method: undefined },
        { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: { [V]: "2026-07-28" } } },
      ),
    ).toMatchObject({ status: 400, error: { code: -32602 } });
    expect(parseModernPost(headers, [request("tools/list", {})])).toMatchObject({ error: { code: -32600 } });
    expect(parseModernPost(headers, { jsonrpc: "2.0", id: 1, result: {} })).toMatchObject({
      error: { code: -32600 },
    });
  });

  it("accepts notifications (no answer)", () => {
    expect(
      parseModernPost(
        { protocolVersion: "2026-07-28", method: undefined },
        { jsonrpc: "2.0", method: "notifications/cancelled" },
      ),
    ).toEqual({
      kind: "notification",
      method: "notifications/cancelled",
    });
  });

  it("legacyParams drops an _meta that only held the envelope", () => {
    expect(legacyParams({ cursor: "c", _meta: { [V]: "2026-07-28", [CAPS]: {} } })).toEqual({ cursor: "c" });
    expect(legacyParams(undefined)).toBeUndefined();
  });
});

describe("results", () => {
  it("server/discover comes from the cached initialize result, with the modern capabilities only", () => {
    expect(discoverResult(INIT)).toEqual({
      resultType: "complete",
      supportedVersions: expect.arrayContaining(["2026-07-28", "2025-11-25", "2025-06-18"]) as unknown,
      capabilities: { tools: { listChanged: true }, resources: { subscribe: true } },
      instructions: "be nice",
      ttlMs: 0,
      cacheScope: "private",
      _meta: { "io.modelcontextprotocol/serverInfo": { name: "legacy", version: "1" } },
    });
  });

  it("list results get cache hints, every result resultType and the server's identity", () => {
    expect(completeResult("tools/list", { tools: [], _meta: { x: 1 } }, INIT)).toEqual({
      tools: [],
      ttlMs: 0,
      cacheScope: "private",
      resultType: "complete",
      _meta: { x: 1, "io.modelcontextprotocol/serverInfo": { name: "legacy", version: "1" } },
    });
    expect(completeResult("tools/call", { content: [] }, INIT)).not.toHaveProperty("ttlMs");
  });

  it("input_required embeds the server's requests without their framing or _meta", () => {
    const result = inputRequiredResult(
      new Map([
        ["elicitation/create#1", { method: "elicitation/create", params: { message: "m", _meta: { p: 1 } } }],
      ]),
      "state",
      INIT,
    );
    expect(result).toMatchObject({
      resultType: "input_required",
      requestState: "state",
      inputRequests: { "elicitation/create#1": { method: "elicitation/create", params: { message: "m" } } },
    });
  });
});

describe("subscriptions/listen filter", () => {
  it("honours only what the server declared, and routes notifications by it", () => {
    const filter = parseListenFilter({
      notifications: { toolsListChanged: true, promptsListChanged: true, resourceSubscriptions: ["a://1"] },
    });
    expect(filter).toBeDefined();
    const honored = honoredFilter(filter!, INIT.capabilities);
    expect(honored).toEqual({ toolsListChanged: true, resourceSubscriptions: ["a://1"] });
    const n = (method: string, params?: unknown) => ({
      jsonrpc: "2.0" as const,
      method,
      ...(params ? { params } : {}),
    });
    expect(filterAccepts(honored, n("notifications/tools/list_changed"))).toBe(true);
    expect(filterAccepts(honored, n("notifications/prompts/list_changed"))).toBe(false);
    expect(filterAccepts(honored, n("notifications/resources/updated", { uri: "a://1" }))).toBe(true);
    expect(filterAccepts(honored, n("notifications/resources/updated", { uri: "a://2" }))).toBe(false);
    expect(filterAccepts(honored, n("notifications/message", { level: "info" }))).toBe(false);
  });

  it("refuses a filter without notifications or with too many URIs", () => {
    expect(parseListenFilter({})).toBeUndefined();
    expect(
      parseListenFilter({
        notifications: { resourceSubscriptions: Array.from({ length: 101 }, (_, i) => `u${i}`) },
      }),
    ).toBeUndefined();
  });

  it("stamps the listen request's id into _meta", () => {
    expect(
      stampSubscription({ jsonrpc: "2.0", method: "notifications/tools/list_changed" }, "listen:1"),
    ).toEqual({
      jsonrpc: "2.0",
      method: "notifications/tools/list_changed",
      params: { _meta: { "io.modelcontextprotocol/subscriptionId": "listen:1" } },
    });
  });
});
