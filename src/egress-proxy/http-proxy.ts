import dns from "node:dns";
import { isIP } from "node:net";
import { RequestError, Server } from "proxy-chain";
import { destinationAllowed } from "../desired/egress-rules.js";
import { blockedAddress } from "./address-guard.js";
import type { DenialAggregator } from "./denials.js";
import type { SourceMap } from "./sources.js";

export interface ProxyDeps {
  sources: SourceMap;
  denials: DenialAggregator;
  egressSubnet: string;
}

/**
 * Why a request from `source` to `host:port` is refused, or undefined when it may go. Destinations are names:
 * an IP literal is refused (allow-lists name hosts), so a server cannot step around them by address.
 */
export function refusal(
  deps: ProxyDeps,
  source: string | undefined,
  host: string,
  port: number,
): string | undefined {
  const server = deps.sources.lookup(source);
  if (!server) return "not a restricted server of this user";
  if (server.mode === "none") return "this server has no egress";
  if (isIP(host.replace(/^\[|\]$/g, "")) !== 0) return "an IP address, not a name";
  if (!destinationAllowed(server.patterns, host, port)) return "not in the allow-list";
  return undefined;
}

/** dns.lookup for the proxy's own connections, refusing names that resolve to an address it must not reach. */
export function guardedLookup(egressSubnet: string): typeof dns.lookup {
  const lookup = (hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error);
      const list = addresses;
      const bad = list.map((a) => blockedAddress(a.address, egressSubnet)).find((r) => r !== undefined);
      if (bad !== undefined || list.length === 0) {
        const refused = Object.assign(new Error(`${hostname} resolves to ${bad ?? "nothing"}`), {
          code: "EGRESS_BLOCKED_ADDRESS",
        });
        return callback(refused);
      }
      if (options.all) return callback(null, list);
      return callback(null, list[0]!.address, list[0]!.family);
    });
  };
  return lookup as unknown as typeof dns.lookup;
}

export function createEgressProxy(port: number, deps: ProxyDeps): Server {
  const dnsLookup = guardedLookup(deps.egressSubnet);
  return new Server({
    port,
    host: "0.0.0.0",
    verbose: false,
    prepareRequestFunction: ({ request, hostname, port: destPort }) => {
      const source = request.socket.remoteAddress;
      const why = refusal(deps, source, hostname, destPort);
      if (why !== undefined) {
        deps.denials.record(
          deps.sources.lookup(source)?.server ?? "(unknown)",
          "connect",
          `${hostname}:${destPort}`,
          why,
        );
        throw new RequestError(`egress refused: ${hostname}:${destPort} (${why})`, 403);
      }
      return { dnsLookup };
    },
  });
}
