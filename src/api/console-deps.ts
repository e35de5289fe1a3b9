import type { Config } from "../config.js";
import type { ContainerRuntime } from "../docker/runtime.js";
import type { ContainerReader } from "./engine/container-reader.js";

/** What the console's endpoints need beyond the rest of the API (wired in the daemon). */
export interface ConsoleApiDeps {
  /** The installation label value: only its containers are read. */
  installation: string;
  /** MCP_PORTAL_PUBLISH_HOST: the address users' MCP ports listen on. */
  publishHost: string;
  /** The gateway serves users' ports (MCP-level health is reported). */
  gateway: boolean;
  /** Read-only engine access: container state and logs. */
  containers: ContainerReader;
  /** Planning a base catalog before it is saved: the full configuration and the engine (only listed). */
  planning?: { config: Config; runtime: ContainerRuntime };
}

/** Fixed bounds of the container-log endpoint (README: "Console"). */
export const LOG_LIMITS = {
  /** Lines returned when the request does not say (`?lines=`). */
  defaultLines: 200,
  /** The most lines one request may ask for. */
  maxLines: 1000,
  /** Bytes of log kept per request, whatever the line count (older output is dropped first). */
  maxBytes: 256 * 1024,
  /** Longer lines are shortened. */
  maxLineChars: 4000,
} as const;
