import { realpathSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { ListenAddress } from "../api/http-server.js";
import { discard, readResponseBody } from "./http-util.js";

/*
 * Who a running gateway is: its installation, state dir and version (plus pid and listen address). Served as JSON
 * at GET /identity on the gateway's own listener (MCP_PORTAL_GATEWAY_LISTEN) and written to
 * <state-dir>/gateway/gateway.json while it runs (contract between `run` and `gateway`, README "Gateway
 * lifecycle"). `run` adopts only a gateway of its own installation and state dir, and refuses anything else that
 * answers on the gateway's address: another installation's gateway is never used silently.
 */

export const GATEWAY_KIND = "mcp-portal-gateway";
export const IDENTITY_PATH = "/identity";
/** An identity answer is small; anything bigger is not a gateway's. */
const MAX_IDENTITY_BYTES = 16 * 1024;

export const GatewayIdentity = z.object({
  kind: z.literal(GATEWAY_KIND),
  installation: z.string().min(1).max(64),
  /** Absolute, symlinks resolved. */
  state_dir: z.string().min(1).max(4096),
  version: z.string().min(1).max(64),
  pid: z.number().int().positive(),
  /** host:port of the gateway's own listener. */
  listen: z.string().min(1).max(300),
  started_at: z.string().max(64),
});
export type GatewayIdentity = z.infer<typeof GatewayIdentity>;

export function identityFilePath(stateDir: string): string {
  return path.join(stateDir, "gateway", "gateway.json");
}

/** A state dir as identities carry it: absolute, symlinks resolved (as far as it exists). */
export function canonicalStateDir(stateDir: string): string {
  const absolute = path.resolve(stateDir);
  try {
    return realpathSync(absolute);
  } catch {
    return absolute;
  }
}

export function formatListen(address: ListenAddress): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** What answers on a gateway address. */
export type Probed =
  { kind: "nothing" } | { kind: "identity"; identity: GatewayIdentity } | { kind: "unknown"; detail: string };

/**
 * Asks `host:port` who it is: nothing listens, a gateway with a valid identity, or something else (no valid
 * identity: another service, or a gateway too old to report one). No redirects, a bounded read, a deadline.
 */
export async function probeGateway(listen: string, timeoutMs = 2000): Promise<Probed> {
  let res: Response;
  try {
    res = await fetch(`http://${listen}${IDENTITY_PATH}`, {
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const code = (error as { cause?: { code?: unknown } }).cause?.code;
    if (code === "ECONNREFUSED") return { kind: "nothing" };
    return { kind: "unknown", detail: typeof code === "string" ? code : "no answer" };
  }
  if (res.status !== 200) {
    await discard(res);
    return { kind: "unknown", detail: `GET ${IDENTITY_PATH}: HTTP ${res.status}` };
  }
  const text = await readSmall(res);
  if (text === undefined) return { kind: "unknown", detail: "identity answer too large" };
  return parseIdentity(text, `GET ${IDENTITY_PATH}`);
}

/** The identity file of a state dir: undefined when absent, else what it holds (or why it is unusable). */
export async function readIdentityFile(stateDir: string): Promise<Probed | undefined> {
  let text: string;
  try {
    text = await readFile(identityFilePath(stateDir), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return { kind: "unknown", detail: `${identityFilePath(stateDir)}: unreadable` };
  }
  if (text.length > MAX_IDENTITY_BYTES) return { kind: "unknown", detail: "identity file too large" };
  return parseIdentity(text, identityFilePath(stateDir));
}

function parseIdentity(text: string, source: string): Probed {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: "unknown", detail: `${source}: not JSON` };
  }
  const parsed = GatewayIdentity.safeParse(value);
  if (!parsed.success) return { kind: "unknown", detail: `${source}: not a gateway identity` };
  return { kind: "identity", identity: parsed.data };
}

/** The answer's body, or undefined when it is over the bound or breaks off. */
async function readSmall(res: Response): Promise<string | undefined> {
  try {
    return await readResponseBody(res, MAX_IDENTITY_BYTES);
  } catch {
    return undefined;
  }
}

export interface ExpectedGateway {
  installation: string;
  /** Canonical (canonicalStateDir). */
  stateDir: string;
  version: string;
}

export type GatewayVerdict =
  | { kind: "none" }
  /** Same installation, state dir and version: adopt it. */
  | { kind: "ours"; identity: GatewayIdentity }
  /** Same installation and state dir, another version (an upgrade): replace it. */
  | { kind: "other_version"; identity: GatewayIdentity }
  /** Another installation or state dir: never use it. */
  | { kind: "stranger"; identity: GatewayIdentity }
  /** Something answers without a valid identity: never use it. */
  | { kind: "unknown"; detail: string };

/** Pure: what `run` makes of what answered. */
export function judgeGateway(probed: Probed, expected: ExpectedGateway): GatewayVerdict {
  if (probed.kind === "nothing") return { kind: "none" };
  if (probed.kind === "unknown") return { kind: "unknown", detail: probed.detail };
  const { identity } = probed;
  if (identity.installation !== expected.installation || identity.state_dir !== expected.stateDir)
    return { kind: "stranger", identity };
  if (identity.version !== expected.version) return { kind: "other_version", identity };
  return { kind: "ours", identity };
}

/** One line saying what answers and why it is not used. */
export function describeVerdict(listen: string, verdict: GatewayVerdict): string {
  switch (verdict.kind) {
    case "none":
      return `nothing answers on ${listen}`;
    case "ours":
    case "other_version":
      return `${listen} is this installation's gateway (pid ${verdict.identity.pid}, version ${verdict.identity.version})`;
    case "stranger":
      return (
        `${listen} is held by the gateway of installation "${verdict.identity.installation}" ` +
        `(state dir ${verdict.identity.state_dir}, pid ${verdict.identity.pid})`
      );
    case "unknown":
      return `${listen} answers, but not as an mcp-portal gateway reporting its identity (${verdict.detail})`;
  }
}
