import dgram from "node:dgram";
import dnsPacket from "dns-packet";
import { nameAllowed } from "../desired/egress-rules.js";
import { blockedAddress } from "./address-guard.js";
import type { DenialAggregator } from "./denials.js";
import type { SourceMap } from "./sources.js";

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
/** TTL of our answers: short, so a policy change (a new proxy) is seen soon. */
const ANSWER_TTL_SECONDS = 30;

export interface DnsDeps {
  sources: SourceMap;
  denials: DenialAggregator;
  egressSubnet: string;
  /** Resolves an allowed name (all addresses of one family); the proxy's own resolver. */
  lookup: (name: string, family: 4 | 6) => Promise<string[]>;
}

/**
 * Answers A and AAAA questions of restricted servers for the names their allow-list covers, and nothing else:
 * a `none` server, an unknown source and any other name get no address (REFUSED, NXDOMAIN), and no question is
 * ever passed on for a name that is not allowed, so DNS carries nothing out.
 */
export async function answerDnsQuery(
  query: Buffer,
  source: string,
  deps: DnsDeps,
): Promise<Buffer | undefined> {
  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(query);
  } catch {
    return undefined;
  }
  const questions = packet.questions ?? [];
  const reply = (rcode: number, answers: dnsPacket.Answer[] = []) =>
    dnsPacket.encode({
      type: "response",
      id: packet.id ?? 0,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
      questions,
      answers,
    });
  const question = questions[0];
  if (packet.type !== "query" || questions.length !== 1 || !question) return reply(RCODE.REFUSED);
  const server = deps.sources.lookup(source);
  if (!server || server.mode === "none") {
    deps.denials.record(server?.server ?? "(unknown)", "dns", question.name, "no DNS for this server");
    return reply(RCODE.REFUSED);
  }
  if (!nameAllowed(server.patterns, question.name)) {
    deps.denials.record(server.server, "dns", question.name, "name not in the allow-list");
    return reply(RCODE.NXDOMAIN);
  }
  const type = question.type;
  if (type !== "A" && type !== "AAAA") return reply(RCODE.NOERROR);
  try {
    const family = type === "A" ? 4 : 6;
    const addresses = (await deps.lookup(question.name, family)).filter(
      (a) => blockedAddress(a, deps.egressSubnet) === undefined,
    );
    return reply(
      RCODE.NOERROR,
      addresses.map((data) => ({ type, name: question.name, ttl: ANSWER_TTL_SECONDS, data })),
    );
  } catch {
    return reply(RCODE.NXDOMAIN);
  }
}

export function startDnsServer(port: number, deps: DnsDeps): dgram.Socket {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (message, remote) => {
    answerDnsQuery(message, remote.address, deps).then(
      (answer) => {
        if (answer) socket.send(answer, remote.port, remote.address);
      },
      () => undefined,
    );
  });
  socket.bind(port, "0.0.0.0");
  return socket;
}
