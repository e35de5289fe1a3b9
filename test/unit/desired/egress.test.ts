// Egress in the desired state and the plan: the field's rules, policy narrowing, unrestricted servers unchanged
// (pinned hashes), restricted servers on the egress network with fixed addresses, the proxy as a workload.
import { describe, expect, it } from "vitest";
import { EGRESS_PROXY_KEY, egressNetworkName } from "../../../src/desired/egress-desired.js";
import {
  effectiveEgress,
  matchesHostPattern,
  nameAllowed,
  parseHostPattern,
} from "../../../src/desired/egress-rules.js";
import type { DesiredUser, RunOutcome } from "../../../src/desired/types.js";
import { computeDesiredUser } from "../../../src/desired/user-desired.js";
import { planUser } from "../../../src/reconcile/plan.js";
import { addressingFor } from "../../../src/reconcile/addressing.js";
import { Egress } from "../../../src/schema/egress.js";
import { PolicyFile } from "../../../src/schema/policy.js";
import { desiredInput, server } from "./fixtures.js";

const pattern = (p: string) => {
  const parsed = parseHostPattern(p);
  if (!parsed) throw new Error(p);
  return parsed;
};

function runOf(desired: DesiredUser, serverId: string): RunOutcome {
  const outcome = desired.servers.find((s) => s.serverId === serverId);
  if (outcome?.kind !== "run") throw new Error(`${serverId}: ${JSON.stringify(outcome)}`);
  return outcome;
}

describe("host:port patterns", () => {
  it("*.example.com matches names below example.com at any depth, and NOT example.com itself", () => {
    const wild = pattern("*.example.com:443");
    expect(matchesHostPattern(wild, "api.example.com", 443)).toBe(true);
    expect(matchesHostPattern(wild, "a.b.example.com", 443)).toBe(true);
    expect(matchesHostPattern(wild, "example.com", 443)).toBe(false);
    expect(matchesHostPattern(wild, "evilexample.com", 443)).toBe(false);
    expect(matchesHostPattern(wild, "example.com.evil.net", 443)).toBe(false);
    expect(matchesHostPattern(wild, "api.example.com", 80)).toBe(false);
    expect(nameAllowed([wild], "example.com")).toBe(false);
  });

  it("matches names case-insensitively, ignores a trailing dot, and * ports match any port", () => {
    const any = pattern("API.Example.com:*");
    expect(matchesHostPattern(any, "api.example.COM.", 8443)).toBe(true);
    expect(matchesHostPattern(any, "api.example.com", 1)).toBe(true);
  });

  it("the schema refuses IP addresses, missing ports, wildcards inside a name and allow_hosts outside allow", () => {
    const bad = (egress: unknown) => Egress.safeParse(egress).success;
    expect(bad({ mode: "allow", allow_hosts: ["10.0.0.1:443"] })).toBe(false);
    expect(bad({ mode: "allow", allow_hosts: ["example.com"] })).toBe(false);
    expect(bad({ mode: "allow", allow_hosts: ["a.*.example.com:443"] })).toBe(false);
    expect(bad({ mode: "allow", allow_hosts: ["example.com:70000"] })).toBe(false);
    expect(bad({ mode: "none", allow_hosts: [] })).toBe(false);
    expect(bad({ mode: "allow" })).toBe(false);
    expect(bad({ mode: "allow", allow_hosts: ["*.example.com:443", "example.com:*"] })).toBe(true);
  });
});

describe("effective egress: policy.json only narrows", () => {
  const allow = (...allow_hosts: string[]) => Egress.parse({ mode: "allow", allow_hosts });
  it("absent declarations are unrestricted; none wins over everything", () => {
    expect(effectiveEgress(undefined, undefined)).toEqual({ mode: "unrestricted" });
    expect(effectiveEgress(allow("a.com:443"), { mode: "none" })).toEqual({ mode: "none" });
    expect(effectiveEgress({ mode: "none" }, { mode: "unrestricted" })).toEqual({ mode: "none" });
  });

  it("a policy cannot widen: unrestricted or a larger list in policy leaves the catalog's list", () => {
    expect(effectiveEgress(allow("api.example.com:443"), { mode: "unrestricted" })).toEqual({
      mode: "allow",
      allow: ["api.example.com:443"],
    });
    expect(effectiveEgress(allow("api.example.com:443"), allow("*.example.com:*", "other.com:443"))).toEqual({
      mode: "allow",
      allow: ["api.example.com:443"],
    });
  });

  it("narrows a catalog's wildcard to the policy's names, and an unrestricted server to the policy's list", () => {
    expect(
      effectiveEgress(allow("*.example.com:*"), allow("api.example.com:443", "example.com:443")),
    ).toEqual({
      mode: "allow",
      allow: ["api.example.com:443"],
    });
    expect(effectiveEgress(undefined, allow("x.org:443"))).toEqual({ mode: "allow", allow: ["x.org:443"] });
    expect(effectiveEgress(allow("*.a.example.com:443"), allow("*.example.com:443"))).toEqual({
      mode: "allow",
      allow: ["*.a.example.com:443"],
    });
    expect(effectiveEgress(allow("a.com:443"), allow("b.com:443"))).toEqual({ mode: "allow", allow: [] });
  });
});

describe("egress in the desired state", () => {
  const tree = {
    servers: [
      server("open"),
      server("fetch", { egress: { mode: "allow", allow_hosts: ["api.example.com:443"] } }),
      server("sealed", { egress: { mode: "none" } }),
    ],
    portBlock: { start: 20000, end: 20015 },
  };

  it("refuses restricted servers where egress is not enforced (Swarm), never runs them unrestricted", () => {
    const desired = computeDesiredUser({ ...desiredInput(tree), egressEnforced: false });
    const outcomes = new Map(desired.servers.map((o) => [o.serverId, o]));
    expect(outcomes.get("open")?.kind).toBe("run");
    for (const [id, egress] of [
      ["fetch", "allow api.example.com:443"],
      ["sealed", "none"],
    ] as const) {
      expect(outcomes.get(id)).toEqual({
        serverId: id,
        kind: "blocked",
        reason: "EgressUnsupported",
        message: `server "${id}" has restricted egress (${egress}), which MCP_PORTAL_BACKEND=swarm cannot enforce: it is refused rather than run unrestricted (README, "Network egress")`,
        keepExisting: false,
      });
    }
    // Nothing restricted runs: no egress network, no proxy.
    expect(desired.egress).toBeUndefined();
  });

  it("leaves an unrestricted server's spec as it was: the same hash as without the egress feature", () => {
    const withRestricted = computeDesiredUser(desiredInput(tree));
    const alone = computeDesiredUser(desiredInput({ servers: [server("open")], portBlock: tree.portBlock }));
    const open = runOf(withRestricted, "open");
    expect(open.specHash).toBe(runOf(alone, "open").specHash);
    expect(open.spec).not.toHaveProperty("addressOffset");
    expect(open.spec.network).toBe("mcp-net-alice");
    expect(open.spec.env).not.toHaveProperty("HTTP_PROXY");
    expect(alone.egress).toBeUndefined();
  });

  it("puts restricted servers on the egress network at fixed offsets; only allow gets the proxy", () => {
    const desired = computeDesiredUser(desiredInput(tree));
    const fetch = runOf(desired, "fetch");
    const sealed = runOf(desired, "sealed");
    expect(fetch.spec.network).toBe(egressNetworkName("default", "alice"));
    expect(fetch.spec.addressOffset).toBe(fetch.spec.hostPort - 20000 + 2);
    expect(fetch.spec.dnsFromEgressProxy).toBe(true);
    expect(fetch.spec.env.HTTPS_PROXY).toBe("http://egress-proxy:3128");
    expect(sealed.spec.env).not.toHaveProperty("HTTPS_PROXY");
    expect(sealed.spec.dnsFromEgressProxy).toBe(true);
    const policy = JSON.parse(desired.egress!.proxy.spec.env.MCP_PORTAL_EGRESS_POLICY!) as {
      servers: { server: string; mode: string; allow: string[] }[];
    };
    expect(policy.servers.map((s) => [s.server, s.mode, s.allow])).toEqual([
      ["fetch", "allow", ["api.example.com:443"]],
      ["sealed", "none", []],
    ]);
  });

  it("the proxy counts toward no limit", () => {
    const desired = computeDesiredUser(desiredInput(tree));
    expect(desired.usage.containers).toBe(3);
    expect(desired.usage.memory_mb).toBe(3 * 128);
  });

  it("a narrower policy changes the proxy's spec and no server's", () => {
    const before = computeDesiredUser(desiredInput(tree));
    const after = computeDesiredUser(
      desiredInput({
        ...tree,
        policy: { egress: { servers: { fetch: { mode: "allow", allow_hosts: ["other.example.com:443"] } } } },
      }),
    );
    for (const id of ["open", "fetch", "sealed"])
      expect(runOf(after, id).specHash).toBe(runOf(before, id).specHash);
    expect(after.egress!.proxy.specHash).not.toBe(before.egress!.proxy.specHash);
    expect(runOf(after, "fetch").egress).toEqual({ mode: "allow", allow: [] });
  });

  it("policy.json egress.default narrows every server, a server's own entry replaces the default", () => {
    const policy = PolicyFile.parse({
      egress: { default: { mode: "none" }, servers: { fetch: { mode: "unrestricted" } } },
    });
    const desired = computeDesiredUser(desiredInput({ ...tree, policy }));
    expect(runOf(desired, "open").egress).toEqual({ mode: "none" });
    expect(runOf(desired, "fetch").egress).toEqual({ mode: "allow", allow: ["api.example.com:443"] });
  });
});

describe("the plan and placement of restricted servers", () => {
  it("creates the egress network before the containers and the proxy as one more workload", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("sealed", { egress: { mode: "none" } })],
        portBlock: { start: 20000, end: 20015 },
      }),
    );
    const plan = planUser("alice", desired, { containers: [], networks: [], volumes: [] });
    const kinds = plan.steps.map((s) =>
      s.kind === "createNetwork" ? `${s.kind}:${s.role ?? "user"}` : s.kind,
    );
    expect(kinds.slice(0, 2)).toEqual(["createNetwork:user", "createNetwork:egress"]);
    const creates = plan.steps.filter((s) => s.kind === "createContainer").map((s) => s.serverId);
    expect(creates).toEqual(["sealed", EGRESS_PROXY_KEY]);
  });

  it("derives fixed addresses and DNS from the egress subnet, and refuses a block larger than it", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("sealed", { egress: { mode: "none" } })],
        portBlock: { start: 20000, end: 20015 },
      }),
    );
    const sealed = runOf(desired, "sealed");
    const net = egressNetworkName("default", "alice");
    expect(addressingFor(sealed.spec, { [net]: "10.199.0.32/27" })).toEqual({
      ok: true,
      value: { addresses: { [net]: `10.199.0.${32 + sealed.spec.addressOffset!}` }, dns: ["10.199.0.62"] },
    });
    const proxy = addressingFor(desired.egress!.proxy.spec, { [net]: "10.199.0.32/27" });
    expect(proxy).toEqual({
      ok: true,
      value: { addresses: { [net]: "10.199.0.62" }, env: { MCP_PORTAL_EGRESS_SUBNET: "10.199.0.32/27" } },
    });
    expect(addressingFor({ ...sealed.spec, addressOffset: 40 }, { [net]: "10.199.0.32/27" }).ok).toBe(false);
    expect(addressingFor(runOf(computeDesiredUser(desiredInput()), "time").spec, {})).toEqual({
      ok: true,
      value: undefined,
    });
  });
});
