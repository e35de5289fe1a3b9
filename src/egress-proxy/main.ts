import dns from "node:dns";
import { z } from "zod";
import { EgressPolicyDocument } from "../contracts/egress-policy.js";
import { EGRESS_DNS_PORT, EGRESS_PROXY_PORT } from "../desired/egress-desired.js";
import { EGRESS_SUBNET_ENV } from "../reconcile/addressing.js";
import { blockedAddress } from "./address-guard.js";
import { DENIAL_WINDOW_SECONDS, DenialAggregator } from "./denials.js";
import { startDnsServer } from "./dns-server.js";
import { createEgressProxy } from "./http-proxy.js";
import { SourceMap } from "./sources.js";

/*
 * A user's egress proxy (README, "Network egress"): the process in the `mcp-portal-egress-proxy` image. It reads
 * its policy from the environment the controller set, serves HTTP CONNECT and plain HTTP proxying on 3128 and
 * DNS on 53 to the user's restricted servers, and writes one JSON line per refused destination and window.
 */

const Env = z.object({
  MCP_PORTAL_EGRESS_POLICY: z.string().min(2),
  [EGRESS_SUBNET_ENV]: z.string().min(9),
});

function main(): void {
  const env = Env.parse(process.env);
  const policy = EgressPolicyDocument.parse(JSON.parse(env.MCP_PORTAL_EGRESS_POLICY));
  const egressSubnet = env[EGRESS_SUBNET_ENV];
  const sources = new SourceMap(policy, egressSubnet);
  const denials = new DenialAggregator(policy.user);
  const lookup = async (name: string, family: 4 | 6): Promise<string[]> => {
    const found = await dns.promises.lookup(name, { all: true, family });
    return found.map((a) => a.address).filter((a) => blockedAddress(a, egressSubnet) === undefined);
  };
  const proxy = createEgressProxy(EGRESS_PROXY_PORT, { sources, denials, egressSubnet });
  const dnsSocket = startDnsServer(EGRESS_DNS_PORT, { sources, denials, egressSubnet, lookup });
  const flush = () => {
    for (const line of denials.flush(new Date(), DENIAL_WINDOW_SECONDS))
      process.stdout.write(`${JSON.stringify(line)}\n`);
  };
  const timer = setInterval(flush, DENIAL_WINDOW_SECONDS * 1000);
  proxy.listen().then(
    () =>
      process.stdout.write(
        `${JSON.stringify({ msg: "egress proxy ready", servers: policy.servers.length })}\n`,
      ),
    (error: unknown) => {
      process.stderr.write(`egress proxy: cannot listen: ${String(error)}\n`);
      process.exit(1);
    },
  );
  const stop = () => {
    clearInterval(timer);
    flush();
    dnsSocket.close();
    void proxy.close(true).then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
