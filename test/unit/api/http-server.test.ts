import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { createHttpServer, InvalidListenAddressError, parseListen } from "../../../src/api/http-server.js";
import type { HealthChecks, HttpServer } from "../../../src/api/http-server.js";
import { createLogger } from "../../../src/observability/logger.js";
import { createMetrics } from "../../../src/observability/metrics.js";

const servers: HttpServer[] = [];

function server(health: Partial<HealthChecks> = {}, registry = new Registry()): HttpServer {
  const instance = createHttpServer({
    registry,
    logger: createLogger({ level: "silent" }),
    health: {
      isShuttingDown: () => false,
      dockerReachable: () => true,
      firstSyncDone: () => true,
      ...health,
    },
    readinessTimeoutMs: 50,
  });
  servers.push(instance);
  return instance;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((instance) => instance.close()));
});

describe("createHttpServer", () => {
  it("serves the registry on /metrics with Prometheus' content type", async () => {
    const metrics = createMetrics(new Registry(), { version: "1.0.0", defaultMetrics: false });
    metrics.reconcileTotal.inc({ result: "success" });
    const response = await server({}, metrics.registry).inject({ method: "GET", url: "/metrics" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe(metrics.registry.contentType);
    expect(response.body).toContain('mcp_portal_reconcile_total{result="success"} 1');
    expect(response.body).toContain('mcp_portal_build_info{version="1.0.0"} 1');
  });

  it("answers /healthz while alive, even when not ready", async () => {
    const response = await server({ firstSyncDone: () => false, dockerReachable: () => false }).inject({
      method: "GET",
      url: "/healthz",
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: "ok" });
  });

  it("is ready when synced, Docker answers and not shutting down", async () => {
    const response = await server({ dockerReachable: () => Promise.resolve(true) }).inject({
      method: "GET",
      url: "/readyz",
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: "ready" });
  });

  it.each([
    [{ isShuttingDown: () => true }, "shutting down"],
    [{ firstSyncDone: () => false }, "initial sync not done"],
    [{ dockerReachable: () => false }, "docker unreachable"],
    [{ dockerReachable: () => Promise.resolve(false) }, "docker unreachable"],
    [{ dockerReachable: () => Promise.reject(new Error("ECONNREFUSED")) }, "docker unreachable"],
    [{ dockerReachable: () => new Promise<boolean>(() => undefined) }, "docker unreachable"],
  ] satisfies [Partial<HealthChecks>, string][])("answers 503 on /readyz: %#", async (health, reason) => {
    const response = await server(health).inject({ method: "GET", url: "/readyz" });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ status: "not ready", reason });
  });

  it("does not log probes and scrapes at info level, nor anything when silent", async () => {
    for (const level of ["info", "silent"] as const) {
      const lines: string[] = [];
      const instance = createHttpServer({
        registry: new Registry(),
        logger: createLogger({ level, destination: { write: (line: string) => void lines.push(line) } }),
        health: { isShuttingDown: () => false, dockerReachable: () => true, firstSyncDone: () => true },
      });
      servers.push(instance);
      for (const url of ["/metrics", "/healthz", "/readyz"]) await instance.inject({ method: "GET", url });
      expect(lines).toEqual([]);
    }
  });

  it("lets later code register more routes on the instance", async () => {
    const instance = server();
    await instance.register(
      (api, _options, done) => {
        api.get("/ping", () => ({ pong: true }));
        done();
      },
      { prefix: "/api/v1" },
    );
    const response = await instance.inject({ method: "GET", url: "/api/v1/ping" });
    expect(response.json()).toEqual({ pong: true });
  });

  it("listens on a real port", async () => {
    const instance = server();
    const { host, port } = parseListen("127.0.0.1:0");
    await instance.listen({ host, port });
    const address = instance.server.address();
    expect(typeof address === "object" && address !== null ? address.port : 0).toBeGreaterThan(0);
    const response = await fetch(
      `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/healthz`,
    );
    expect(response.status).toBe(200);
  });
});

describe("parseListen", () => {
  it.each([
    ["127.0.0.1:8080", { host: "127.0.0.1", port: 8080 }],
    ["0.0.0.0:80", { host: "0.0.0.0", port: 80 }],
    ["localhost:9090", { host: "localhost", port: 9090 }],
    ["portal.example.com:443", { host: "portal.example.com", port: 443 }],
    ["[::1]:8080", { host: "::1", port: 8080 }],
    ["[::]:8080", { host: "::", port: 8080 }],
    [" 127.0.0.1:0 ", { host: "127.0.0.1", port: 0 }],
  ])("parses %s", (value, expected) => {
    expect(parseListen(value)).toEqual(expected);
  });

  it.each([
    "8080",
    ":8080",
    "127.0.0.1",
    "127.0.0.1:",
    "127.0.0.1:http",
    "127.0.0.1:65536",
    "127.0.0.1:-1",
    "::1:8080",
    "[localhost]:8080",
    "[::1]",
    "999.1.1.1:80",
    "bad host:80",
    "",
  ])("rejects %j", (value) => {
    expect(() => parseListen(value)).toThrow(InvalidListenAddressError);
  });

  it("says why", () => {
    expect(() => parseListen("::1:8080")).toThrow(/needs brackets/);
    try {
      parseListen("127.0.0.1:99999");
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidListenAddressError);
      expect((error as InvalidListenAddressError).code).toBe("ERR_INVALID_LISTEN_ADDRESS");
      expect((error as Error).message).toMatch(/port/);
    }
  });
});
