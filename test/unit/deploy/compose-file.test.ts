import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadGatewayConfig } from "../../../src/gateway/config.js";

// docker-compose.yml against what docker-compose 1.29 accepts and against .env.example: every setting the
// example documents reaches the controller, and the gateway gets only what it reads (never the secret keys or the
// admin token). The file is run for real with 1.29 in test/integration/compose.test.ts.

const REPO = path.resolve(import.meta.dirname, "../../..");

interface Service {
  environment?: Record<string, string | null>;
  env_file?: unknown;
  network_mode?: string;
}
interface ComposeFile {
  name?: unknown;
  services: Record<string, Service>;
}

async function composeFile(): Promise<ComposeFile> {
  return parseYaml(await readFile(path.join(REPO, "docker-compose.yml"), "utf8")) as ComposeFile;
}

/** Variables of .env.example by section title (`# --- Title ----`). */
async function exampleVariables(): Promise<Map<string, string[]>> {
  const sections = new Map<string, string[]>();
  let current = "(top)";
  for (const line of (await readFile(path.join(REPO, ".env.example"), "utf8")).split("\n")) {
    const title = /^# --- (.*?) -+$/.exec(line)?.[1];
    if (title !== undefined) current = title;
    const name = /^#?([A-Z][A-Z0-9_]*)=/.exec(line)?.[1];
    if (name !== undefined) sections.set(current, [...(sections.get(current) ?? []), name]);
  }
  return sections;
}

/**
 * What the gateway process reads from its environment besides its own MCP_PORTAL_GATEWAY_* settings
 * (src/gateway/config.ts and the shared config).
 */
const GATEWAY_READS = new Set([
  "MCP_PORTAL_INSTALLATION",
  "MCP_PORTAL_STATE_DIR",
  "MCP_PORTAL_PUBLISH_HOST",
  "MCP_PORTAL_DOCKER_TIMEOUT_SECONDS",
  "MCP_PORTAL_GATEWAY_LISTEN",
  "MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS",
  "MCP_PORTAL_GATEWAY_RESYNC_SECONDS",
  // Its tool-call audit log rotates as the controller's.
  "MCP_PORTAL_AUDIT_MAX_BYTES",
  "LOG_LEVEL",
  "LOG_PRETTY",
]);

describe("docker-compose.yml", () => {
  it("uses only what docker-compose 1.29 accepts: no top-level name, env_file as plain strings if at all", async () => {
    const file = await composeFile();
    expect(file.name).toBeUndefined();
    for (const [name, service] of Object.entries(file.services)) {
      const envFiles = service.env_file === undefined ? [] : [service.env_file].flat();
      for (const entry of envFiles) expect(typeof entry, `${name}.env_file`).toBe("string");
    }
  });

  it("passes every controller setting .env.example documents to the controller", async () => {
    const controller = (await composeFile()).services.controller!.environment ?? {};
    const documented = [...(await exampleVariables())]
      .filter(([title]) => !/^Compose and image|^mcp-portal import|^Gateway/.test(title))
      .flatMap(([, names]) => names)
      // The services always use the socket mounted into them.
      .filter((name) => name !== "DOCKER_HOST");
    expect(documented.length).toBeGreaterThan(20);
    expect(documented.filter((name) => !(name in controller))).toEqual([]);
    expect(controller).not.toHaveProperty("DOCKER_HOST");
  });

  it("gives the gateway only what it reads: never the secret keys or the admin token", async () => {
    const gateway = (await composeFile()).services.gateway!;
    expect(gateway.network_mode).toBe("host");
    // An env_file would hand it every variable of the file, keys and token included.
    expect(gateway.env_file).toBeUndefined();
    const names = Object.keys(gateway.environment ?? {});
    // The identity settings (README, "Identity"): the URL clients use and the OpenID Connect provider.
    const identity =
      (await exampleVariables()).get('Identity (the controller and the gateway; README, "Identity")') ?? [];
    expect(identity).toContain("MCP_PORTAL_OIDC_ISSUER");
    expect(identity.filter((name) => !names.includes(name))).toEqual([]);
    const gatewayOwn = (name: string) => name.startsWith("MCP_PORTAL_GATEWAY_") || identity.includes(name);
    expect(names.filter((name) => !GATEWAY_READS.has(name) && !gatewayOwn(name))).toEqual([]);
    // Every gateway setting .env.example documents reaches the gateway.
    const documented = [...(await exampleVariables()).values()].flat().filter(gatewayOwn);
    expect(documented.filter((name) => !names.includes(name))).toEqual([]);
    expect(names.filter((name) => /SECRET|ADMIN_TOKEN/.test(name))).toEqual([]);
    // The fixed values form a configuration the gateway accepts.
    const fixed = Object.fromEntries(
      Object.entries(gateway.environment ?? {}).flatMap(([k, v]) =>
        typeof v === "string" ? [[k, v.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1")]] : [],
      ),
    );
    expect(loadGatewayConfig(fixed)).toMatchObject({
      stateDir: "/state",
      listen: { host: "127.0.0.1", port: 8081 },
    });
  });
});
