/**
 * Catalog regeneration benchmark: 100 users (5 custom servers, 10 enabled each) over a 500-server base catalog.
 * After a first full generation the base catalog changes (one file rewritten) and every user's merged catalog
 * is regenerated: load global files, merge once, then per user load custom-servers.json + enabled-servers.json,
 * mergeUserCatalog and a MergedCatalogCache write. The original design accepted 60 s for this.
 *
 * Run: npm run bench:catalog
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { listUserDirs, loadGlobalFiles, loadUserFiles } from "../src/catalog/data-tree.js";
import { type Sourced, mergeGlobalCatalog, mergeUserCatalog } from "../src/catalog/merge.js";
import { MergedCatalogCache } from "../src/catalog/merged-cache.js";
import type { BaseCatalogFile, UserCatalogFile } from "../src/schema/catalog.js";

const USERS = 100;
const BASE_SERVERS = 500;
const CUSTOM_PER_USER = 5;
const ENABLED_PER_USER = 10;
const RUNS = 5;
const CONCURRENCY = 4; // MCP_PORTAL_CONCURRENCY default
const ACCEPTED_SECONDS = 60;

function baseServer(i: number, revision: number): Record<string, unknown> {
  const id = `server-${String(i).padStart(3, "0")}`;
  return {
    id,
    name: id,
    display_name: `Server ${i}`,
    description: `Benchmark server ${i}, revision ${revision}. ${"Lorem ipsum dolor sit amet. ".repeat(3)}`,
    category: ["development", "web", "data", "utilities"][i % 4],
    image: `mcp/bench-${i % 50}`,
    tag: `1.${i % 10}.${revision}`,
    transport: i % 5 === 0 ? "streamable-http" : "stdio",
    ports: i % 5 === 0 ? [{ container_port: 8080 }] : [],
    environment: { LOG_LEVEL: "info", SERVER_INDEX: String(i) },
    volumes:
      i % 3 === 0 ? [{ host_path: `{USER_DATA}/${id}`, container_path: "/data/work", mode: "rw" }] : [],
    resources: { memory_mb: 128, cpu_shares: 64, pids_limit: 64 },
    user_configurable: i % 2 === 0,
    required_secrets: i % 7 === 0 ? ["API_TOKEN"] : [],
  };
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

async function writeBaseCatalog(dataDir: string, revision: number): Promise<void> {
  await writeJson(path.join(dataDir, "catalogs/base/main.json"), {
    version: `1.0.${revision}`,
    source: "base",
    metadata: { name: "Benchmark catalog" },
    servers: Array.from({ length: BASE_SERVERS }, (_, i) => baseServer(i, revision)),
  });
}

async function generateTree(dataDir: string): Promise<void> {
  await writeBaseCatalog(dataDir, 0);
  for (let u = 0; u < USERS; u++) {
    const userDir = path.join(dataDir, "users", `user-${String(u).padStart(3, "0")}`);
    const custom = Array.from({ length: CUSTOM_PER_USER }, (_, c) => ({
      id: `custom-${c}`,
      name: `custom-${c}`,
      image: "mcp/custom",
      tag: `${u}.${c}`,
      environment: { OWNER: `user-${u}` },
    }));
    await writeJson(path.join(userDir, "custom-servers.json"), {
      version: "1",
      source: "user",
      metadata: { name: `user ${u}` },
      servers: custom,
    });
    const fromBase = Array.from({ length: ENABLED_PER_USER - CUSTOM_PER_USER }, (_, k) => ({
      id: `server-${String((u * 7 + k * 13) % BASE_SERVERS).padStart(3, "0")}`,
    }));
    await writeJson(path.join(userDir, "enabled-servers.json"), {
      servers: [...fromBase, ...custom.map((s) => ({ id: s.id }))],
    });
  }
}

interface PassResult {
  ms: number;
  recomputed: number;
}

/** One full pass, the way the controller regenerates every user after a global file changed. */
async function regenerateAll(dataDir: string, cache: MergedCatalogCache): Promise<PassResult> {
  const start = performance.now();
  const global = await loadGlobalFiles(dataDir, []);
  const base: Sourced<BaseCatalogFile>[] = [];
  for (const file of global.base) {
    if (file.status !== "ok") throw new Error(`${file.file} did not load`);
    base.push({ file: file.file, hash: file.hash, catalog: file.value });
  }
  const merged = mergeGlobalCatalog(base, []);
  if (merged.problems.length > 0) throw new Error(`merge problems: ${JSON.stringify(merged.problems)}`);
  const users = (await listUserDirs(dataDir)).names;
  let recomputed = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < users.length; i = next++) {
      const userId = users[i] as string;
      const files = await loadUserFiles(dataDir, userId);
      if (files.custom.status !== "ok" || files.enabled.status !== "ok")
        throw new Error(`${userId} did not load`);
      const custom: Sourced<UserCatalogFile> = {
        file: files.custom.file,
        hash: files.custom.hash,
        catalog: files.custom.value,
      };
      const catalog = mergeUserCatalog(merged.catalog, custom);
      const result = await cache.get(userId, catalog.inputsHash, () => catalog);
      if (result.recomputed) recomputed++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { ms: performance.now() - start, recomputed };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

async function main(): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), "mcp-portal-bench-"));
  const dataDir = path.join(root, "data");
  const stateDir = path.join(root, "state");
  try {
    await generateTree(dataDir);
    const cache = new MergedCatalogCache(stateDir);
    const first = await regenerateAll(dataDir, cache);
    const unchanged = await regenerateAll(dataDir, cache);

    const runs: number[] = [];
    for (let run = 1; run <= RUNS; run++) {
      await writeBaseCatalog(dataDir, run);
      const pass = await regenerateAll(dataDir, cache);
      if (pass.recomputed !== USERS)
        throw new Error(`run ${run}: ${pass.recomputed} of ${USERS} users recomputed`);
      runs.push(pass.ms);
    }

    const med = median(runs);
    const lines = [
      `catalog regeneration: ${USERS} users x (${CUSTOM_PER_USER} custom, ${ENABLED_PER_USER} enabled), ${BASE_SERVERS}-server base catalog, concurrency ${CONCURRENCY}`,
      `  first full generation:          ${fmt(first.ms)} (${first.recomputed} catalogs written)`,
      `  unchanged pass (all cached):    ${fmt(unchanged.ms)} (${unchanged.recomputed} recomputed)`,
      `  after a base catalog change (${RUNS} runs, every user recomputed and rewritten):`,
      `    wall time median ${fmt(med)}, min ${fmt(Math.min(...runs))}, max ${fmt(Math.max(...runs))}`,
      `    per user (median / ${USERS}): ${fmt(med / USERS)}`,
      `    vs the original design's ${ACCEPTED_SECONDS} s: ${((med / 1000 / ACCEPTED_SECONDS) * 100).toFixed(2)} % of the budget (${(
        (ACCEPTED_SECONDS * 1000) /
        med
      ).toFixed(0)}x faster)`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
