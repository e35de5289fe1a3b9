import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AuditLog,
  parseAuditMaxBytes,
  redactDetails,
  DEFAULT_AUDIT_MAX_BYTES,
} from "../../../src/observability/audit.js";
import type { AuditEvent, AuditEventInput } from "../../../src/observability/audit.js";

const SECRET = "s3cr3t-value-42";
let dir: string;
const logs: AuditLog[] = [];

function auditLog(options: Partial<ConstructorParameters<typeof AuditLog>[0]> = {}): AuditLog {
  const log = new AuditLog({ stateDir: dir, now: () => new Date("2030-01-02T03:04:05.000Z"), ...options });
  logs.push(log);
  return log;
}

function event(overrides: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    event_type: "CONTAINER_OPERATION",
    user_id: "alice",
    action: "create",
    resource: "mcp-alice-github-001",
    result: "success",
    details: { image: "mcp/github:v1" },
    ...overrides,
  };
}

async function readLines(file = join(dir, "audit.log")): Promise<string[]> {
  const text = await readFile(file, "utf8");
  expect(text.endsWith("\n")).toBe(true);
  return text.slice(0, -1).split("\n");
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "mcp-portal-audit-"));
});

afterEach(async () => {
  await Promise.all(logs.splice(0).map((log) => log.close()));
  await rm(dir, { recursive: true, force: true });
});

describe("AuditLog", () => {
  it("writes one JSON line per event with the original design's fields in snake_case", async () => {
    const log = auditLog();
    expect(await log.write(event())).toBe(true);
    expect(
      await log.write(
        event({
          event_type: "API_REQUEST",
          user_id: null,
          action: "PUT /api/v1/users/bob/enabled-servers",
          resource: "users/bob",
          result: "blocked",
          ip_address: "127.0.0.1",
          user_agent: "curl/8",
          session_id: "tok-1",
        }),
      ),
    ).toBe(true);
    const lines = await readLines();
    expect(lines).toHaveLength(2);
    const first = JSON.parse(lines[0] ?? "") as AuditEvent;
    expect(first).toEqual({
      timestamp: "2030-01-02T03:04:05.000Z",
      event_type: "CONTAINER_OPERATION",
      user_id: "alice",
      action: "create",
      resource: "mcp-alice-github-001",
      result: "success",
      details: { image: "mcp/github:v1" },
      severity: "info",
    });
    const second = JSON.parse(lines[1] ?? "") as AuditEvent;
    expect(second).toMatchObject({
      user_id: null,
      result: "blocked",
      severity: "warning",
      ip_address: "127.0.0.1",
      user_agent: "curl/8",
      session_id: "tok-1",
    });
    expect((await stat(join(dir, "audit.log"))).mode & 0o777).toBe(0o600);
  });

  it("derives severity from the result unless given", async () => {
    const log = auditLog();
    await log.write(event({ result: "failure" }));
    await log.write(event({ result: "failure", severity: "critical" }));
    const [a, b] = (await readLines()).map((line) => JSON.parse(line) as AuditEvent);
    expect(a?.severity).toBe("error");
    expect(b?.severity).toBe("critical");
  });

  it("keeps lines whole under concurrent writes", async () => {
    const log = auditLog({ fsyncIntervalMs: 5 });
    const big = "x".repeat(5000);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.write(event({ resource: `r${i}`, details: { i, big } }))),
    );
    expect(results.every(Boolean)).toBe(true);
    const lines = await readLines();
    expect(lines).toHaveLength(200);
    const seen = lines.map((line) => (JSON.parse(line) as AuditEvent).details.i);
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it("rotates by size and keeps N files", async () => {
    const log = auditLog({ maxBytes: 1024, keep: 3 });
    for (let i = 0; i < 60; i++) await log.write(event({ details: { i, pad: "p".repeat(200) } }));
    await log.flush();
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]);
    for (const file of files) {
      expect((await stat(join(dir, file))).size).toBeLessThanOrEqual(1024);
      for (const line of await readLines(join(dir, file)))
        expect(() => JSON.parse(line) as unknown).not.toThrow();
    }
    // Newest events in audit.log, the ones just before in audit.log.1.
    const current = (await readLines()).map((line) => (JSON.parse(line) as AuditEvent).details.i as number);
    const previous = (await readLines(join(dir, "audit.log.1"))).map(
      (line) => (JSON.parse(line) as AuditEvent).details.i as number,
    );
    expect(current.at(-1)).toBe(59);
    expect(previous.at(-1)).toBe((current[0] ?? 0) - 1);
  });

  it("keeps every concurrent event whole across rotations", async () => {
    const log = auditLog({ maxBytes: 2048, keep: 100 });
    await Promise.all(Array.from({ length: 100 }, (_, i) => log.write(event({ details: { i } }))));
    const seen: number[] = [];
    for (const file of await readdir(dir)) {
      for (const line of await readLines(join(dir, file)))
        seen.push((JSON.parse(line) as AuditEvent).details.i as number);
    }
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it("starts a fresh line after a torn last line", async () => {
    const file = join(dir, "audit.log");
    await writeFile(file, `${JSON.stringify({ action: "old" })}\n`);
    await appendFile(file, '{"timestamp":"2030-01-01T00:00:00.000Z","event_ty');
    const log = auditLog();
    await log.write(event({ action: "after-crash" }));
    const lines = await readLines();
    expect(lines).toHaveLength(3);
    expect(() => JSON.parse(lines[1] ?? "") as unknown).toThrow();
    expect(JSON.parse(lines[2] ?? "")).toMatchObject({ action: "after-crash" });
  });

  it("appends to an existing log across restarts", async () => {
    const first = auditLog();
    await first.write(event({ action: "one" }));
    await first.close();
    const second = auditLog();
    await second.write(event({ action: "two" }));
    const actions = (await readLines()).map((line) => (JSON.parse(line) as AuditEvent).action);
    expect(actions).toEqual(["one", "two"]);
  });

  it("counts and logs a failed write without rejecting", async () => {
    const errors: unknown[] = [];
    const logged: unknown[] = [];
    const blocker = join(dir, "not-a-dir");
    await writeFile(blocker, "");
    const log = auditLog({
      stateDir: join(blocker, "state"),
      onWriteError: (error) => errors.push(error),
      logger: { error: (...args: unknown[]) => logged.push(args) } as never,
    });
    await expect(log.write(event())).resolves.toBe(false);
    await expect(log.write(event())).resolves.toBe(false);
    expect(errors).toHaveLength(2);
    expect(logged).toHaveLength(2);
  });

  it("fails writes after close without throwing", async () => {
    const errors: unknown[] = [];
    const log = auditLog({ onWriteError: (error) => errors.push(error) });
    await log.close();
    await expect(log.write(event())).resolves.toBe(false);
    expect(errors).toHaveLength(1);
  });

  it("fsyncs per event when fsyncIntervalMs is 0", async () => {
    const log = auditLog({ fsyncIntervalMs: 0 });
    expect(await log.write(event())).toBe(true);
    expect(await readLines()).toHaveLength(1);
  });

  it("never writes secret values from details", async () => {
    const log = auditLog();
    await log.write(
      event({
        event_type: "SECRET_CHANGE",
        details: {
          secret_name: "GITHUB_TOKEN",
          value: SECRET,
          nested: { token: SECRET, password: SECRET, env: { A: SECRET }, list: [{ api_key: SECRET }] },
        },
      }),
    );
    const text = await readFile(join(dir, "audit.log"), "utf8");
    expect(text).not.toContain(SECRET);
    expect(text).toContain("GITHUB_TOKEN");
  });
});

describe("redactDetails", () => {
  it("drops secret-like keys at any depth and keeps names and digests", () => {
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    expect(
      redactDetails({
        value: "x",
        new_value: "x",
        client_secret: "x",
        Password: "x",
        authToken: "x",
        environment: { A: "x" },
        secret_name: "GITHUB_TOKEN",
        secret_digest: "sha256:abc",
        token_id: "t1",
        spec: { image: "mcp/x", secrets: { A: "x" } },
        list: [{ token: "x", ok: 1 }],
        at: new Date("2030-01-01T00:00:00.000Z"),
        circular,
      }),
    ).toEqual({
      secret_name: "GITHUB_TOKEN",
      secret_digest: "sha256:abc",
      token_id: "t1",
      spec: { image: "mcp/x" },
      list: [{ ok: 1 }],
      at: "2030-01-01T00:00:00.000Z",
      circular: { a: 1, self: "[Circular]" },
    });
  });
});

describe("parseAuditMaxBytes", () => {
  it("defaults to 10 MiB and validates", () => {
    expect(parseAuditMaxBytes({})).toBe(DEFAULT_AUDIT_MAX_BYTES);
    expect(DEFAULT_AUDIT_MAX_BYTES).toBe(10 * 1024 * 1024);
    expect(parseAuditMaxBytes({ MCP_PORTAL_AUDIT_MAX_BYTES: "2048" })).toBe(2048);
    expect(() => parseAuditMaxBytes({ MCP_PORTAL_AUDIT_MAX_BYTES: "lots" })).toThrow(
      /MCP_PORTAL_AUDIT_MAX_BYTES/,
    );
    expect(() => parseAuditMaxBytes({ MCP_PORTAL_AUDIT_MAX_BYTES: "10" })).toThrow(
      /MCP_PORTAL_AUDIT_MAX_BYTES/,
    );
  });
});
