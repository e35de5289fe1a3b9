import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach } from "vitest";
import type { Sourced } from "../../../src/catalog/merge.js";
import { BaseCatalogFile, OverlayCatalogFile, UserCatalogFile } from "../../../src/schema/catalog.js";
import { sha256Hex } from "../../../src/util/canonical-json.js";

/** Temp dirs removed after each test of the calling file. */
export function useTempDirs(prefix = "mcp-portal-catalog-"): () => Promise<string> {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });
  return async () => {
    const dir = await mkdtemp(path.join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
}

export function server(id: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, name: id, image: `mcp/${id}`, ...fields };
}

function hashOf(value: unknown): string {
  return sha256Hex(JSON.stringify(value));
}

export function base(file: string, servers: Record<string, unknown>[]): Sourced<BaseCatalogFile> {
  const raw = { version: "1", source: "base", metadata: { name: file }, servers };
  return { file, hash: hashOf(raw), catalog: BaseCatalogFile.parse(raw) };
}

export function overlay(file: string, servers: Record<string, unknown>[]): Sourced<OverlayCatalogFile> {
  const raw = { version: "1", source: "overlay", metadata: { name: file }, servers };
  return { file, hash: hashOf(raw), catalog: OverlayCatalogFile.parse(raw) };
}

export function custom(file: string, servers: Record<string, unknown>[]): Sourced<UserCatalogFile> {
  const raw = { version: "1", source: "user", metadata: { name: file }, servers };
  return { file, hash: hashOf(raw), catalog: UserCatalogFile.parse(raw) };
}
