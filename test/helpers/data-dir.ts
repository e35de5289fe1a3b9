// Writes desired-state trees for tests: catalogs, policy and users, as people (or git) would.
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { TEST_BUSYBOX_IMAGE } from "./docker-objects.js";

const [TEST_IMAGE_NAME, TEST_IMAGE_TAG] = TEST_BUSYBOX_IMAGE.split(":") as [string, string];

/** A stdio server that stays up reading stdin (the controller keeps stdin open). */
export function stdioServer(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    name: id,
    image: TEST_IMAGE_NAME,
    tag: TEST_IMAGE_TAG,
    command: ["sh", "-c", 'while read -r line; do echo "$line"; done'],
    transport: "stdio",
    resources: { memory_mb: 32, cpu_shares: 32, pids_limit: 32 },
    ...extra,
  };
}

/** An HTTP server (busybox httpd on 8080) answering "ok-<id>". */
export function httpServer(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    name: id,
    image: TEST_IMAGE_NAME,
    tag: TEST_IMAGE_TAG,
    command: ["sh", "-c", `echo ok-${id} > /tmp/index.html && exec httpd -f -p 8080 -h /tmp`],
    transport: "streamable-http",
    ports: [{ container_port: 8080 }],
    resources: { memory_mb: 32, cpu_shares: 32, pids_limit: 32 },
    ...extra,
  };
}

export class TestDataDir {
  private constructor(readonly root: string) {}

  static async create(): Promise<TestDataDir> {
    return new TestDataDir(await mkdtemp(path.join(tmpdir(), "mcp-portal-test-")));
  }

  get stateDir(): string {
    return path.join(this.root, ".mcp-portal");
  }

  async write(rel: string, content: unknown): Promise<void> {
    const file = path.join(this.root, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, typeof content === "string" ? content : `${JSON.stringify(content, null, 2)}\n`);
  }

  baseCatalog(name: string, servers: Record<string, unknown>[]): Promise<void> {
    return this.write(`catalogs/base/${name}.json`, {
      version: "1.0.0",
      source: "base",
      metadata: { name },
      servers,
    });
  }

  enable(
    userId: string,
    servers: (string | { id: string; config?: unknown; tools?: unknown })[],
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    return this.write(`users/${userId}/enabled-servers.json`, {
      servers: servers.map((s) => (typeof s === "string" ? { id: s } : s)),
      ...extra,
    });
  }

  policy(policy: Record<string, unknown>): Promise<void> {
    return this.write("policy.json", policy);
  }

  async removeUser(userId: string): Promise<void> {
    await rm(path.join(this.root, "users", userId), { recursive: true, force: true });
  }

  async dispose(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}
