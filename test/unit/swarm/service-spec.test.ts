import { describe, expect, it } from "vitest";
import type { ContainerSpec } from "../../../src/desired/types.js";
import { placementOf } from "../../../src/docker/swarm-runtime.js";
import {
  SERVICE_FINGERPRINT_LABEL,
  serviceFingerprint,
  serviceSpec,
  swarmSpecWarnings,
  tmpfsSizeBytes,
} from "../../../src/swarm/service-spec.js";

const spec: ContainerSpec = {
  name: "mcp-alice-a-123456",
  image: "mcp/a:1",
  cmd: ["serve"],
  env: { SECRET_TOKEN: "s3cr3t", MCP_SERVER_PORT: "8080" },
  labels: { "mcp.portal.user_id": "alice", "mcp.portal.spec_hash": "abc" },
  user: "1000:1000",
  network: "mcp-net-alice",
  hostPort: 20001,
  exposedPorts: [],
  memoryBytes: 128 * 1024 * 1024,
  cpuShares: 256,
  pidsLimit: 128,
  mounts: [{ volumeName: "vol1", target: "/data", readOnly: false }],
  capAdd: ["NET_BIND_SERVICE"],
  noNewPrivileges: true,
  readOnlyRootfs: true,
  tmpfs: { "/tmp": "rw,noexec,nosuid,size=64m" },
  openStdin: true,
  healthCheck: { interval_seconds: 30, timeout_seconds: 5, retries: 3, start_period_seconds: 10 },
};

/** The parts of the create body the tests read. */
interface Body {
  Name: string;
  Labels: Record<string, string>;
  Mode: unknown;
  EndpointSpec: { Mode: string };
  TaskTemplate: {
    ContainerSpec: {
      Labels: Record<string, string>;
      User: string;
      ReadOnly: boolean;
      CapabilityDrop: string[];
      CapabilityAdd: string[];
      OpenStdin: boolean;
      Env: string[];
      Mounts: { VolumeOptions?: { Labels?: Record<string, string> } }[];
    };
    Placement: { Constraints?: string[] };
    Networks: unknown;
    Resources: unknown;
    RestartPolicy: unknown;
  };
}

describe("serviceSpec", () => {
  const body = serviceSpec(spec, spec.name, {
    restartDelayMs: 5000,
    placementNodeId: "node-2",
    volumeLabels: (name) => (name === "vol1" ? { "mcp.portal.user_id": "alice" } : undefined),
  }) as unknown as Body;

  it("is one replica with our labels on the service and its containers, pinned to the chosen node", () => {
    expect(body.Name).toBe(spec.name);
    expect(body.Labels).toEqual({
      ...spec.labels,
      [SERVICE_FINGERPRINT_LABEL]: serviceFingerprint(body),
    });
    expect(body.TaskTemplate.ContainerSpec.Labels).toEqual(spec.labels);
    expect(body.Mode).toEqual({ Replicated: { Replicas: 1 } });
    expect(body.TaskTemplate.Placement).toEqual({ Constraints: ["node.id==node-2"] });
    expect(placementOf(body.TaskTemplate.Placement.Constraints ?? [])).toBe("node-2");
    expect(body.TaskTemplate.Networks).toEqual([{ Target: "mcp-net-alice" }]);
    expect(body.EndpointSpec.Mode).toBe("dnsrr");
  });

  it("carries the hardening Swarm can express, limits and reservations, and Swarm-owned restarts", () => {
    const c = body.TaskTemplate.ContainerSpec;
    expect(c.User).toBe("1000:1000");
    expect(c.ReadOnly).toBe(true);
    expect(c.CapabilityDrop).toEqual(["ALL"]);
    expect(c.CapabilityAdd).toEqual(["NET_BIND_SERVICE"]);
    expect(c.OpenStdin).toBe(true);
    expect(c.Mounts).toContainEqual({
      Type: "tmpfs",
      Target: "/tmp",
      TmpfsOptions: { SizeBytes: 64 * 1024 * 1024, Mode: 0o1777 },
    });
    expect(c.Mounts[0]?.VolumeOptions?.Labels).toEqual({ "mcp.portal.user_id": "alice" });
    expect(body.TaskTemplate.Resources).toEqual({
      Limits: { MemoryBytes: spec.memoryBytes, Pids: 128 },
      Reservations: { MemoryBytes: spec.memoryBytes, NanoCPUs: 250_000_000 },
    });
    expect(body.TaskTemplate.RestartPolicy).toEqual({ Condition: "on-failure", Delay: 5e9, MaxAttempts: 0 });
  });

  it("puts secrets in the environment only, never in a label", () => {
    expect(body.TaskTemplate.ContainerSpec.Env).toContain("SECRET_TOKEN=s3cr3t");
    expect(JSON.stringify(body.Labels)).not.toContain("s3cr3t");
    expect(JSON.stringify(body.TaskTemplate.ContainerSpec.Labels)).not.toContain("s3cr3t");
  });

  it("has no placement constraint when none is given", () => {
    const unplaced = serviceSpec(spec, spec.name, {
      restartDelayMs: 0,
      volumeLabels: () => undefined,
    }) as unknown as Body;
    expect(unplaced.TaskTemplate.Placement).toEqual({});
  });
});

describe("swarmSpecWarnings", () => {
  it("names no-new-privileges, the tmpfs flags and swap, which a service cannot express", () => {
    const warnings = swarmSpecWarnings(spec).join("\n");
    expect(warnings).toMatch(/no-new-privileges/);
    expect(warnings).toMatch(/tmpfs \/tmp .*noexec,nosuid/);
    expect(warnings).toMatch(/swap/);
    expect(swarmSpecWarnings({ ...spec, noNewPrivileges: false, tmpfs: {} })).toHaveLength(1);
  });

  it("reads tmpfs sizes", () => {
    expect(tmpfsSizeBytes("rw,size=64m")).toBe(64 * 1024 * 1024);
    expect(tmpfsSizeBytes("size=2g")).toBe(2 * 1024 ** 3);
    expect(tmpfsSizeBytes("rw,noexec")).toBeUndefined();
  });
});

describe("serviceFingerprint", () => {
  const options = { restartDelayMs: 5000, volumeLabels: () => undefined };
  const body = serviceSpec(spec, spec.name, { ...options, placementNodeId: "node-1" });
  /** The spec as Swarm hands it back: defaults added, networks by id, empty lists dropped. */
  const asStored = (b: Record<string, unknown>): Record<string, unknown> => {
    const copy = structuredClone(b) as {
      TaskTemplate: Record<string, unknown> & { ContainerSpec: Record<string, unknown> };
    } & Record<string, unknown>;
    copy.TaskTemplate.ContainerSpec.Isolation = "default";
    copy.TaskTemplate.ForceUpdate = 0;
    copy.TaskTemplate.Runtime = "container";
    copy.TaskTemplate.Networks = [{ Target: "k5x0network1d" }];
    copy.TaskTemplate.ContainerSpec.Mounts = (
      copy.TaskTemplate.ContainerSpec.Mounts as Record<string, unknown>[]
    ).map((m) => ({ ...m, Consistency: "default" }));
    return copy;
  };

  it("matches the spec as Swarm stores it, and does not change with placement", () => {
    expect(serviceFingerprint(asStored(body))).toBe(serviceFingerprint(body));
    const moved = serviceSpec(spec, spec.name, { ...options, placementNodeId: "node-3" });
    expect(serviceFingerprint(moved)).toBe(serviceFingerprint(body));
    expect((body.Labels as Record<string, string>)[SERVICE_FINGERPRINT_LABEL]).toBe(serviceFingerprint(body));
    // Swarm drops an empty list: absent and empty are the same.
    const none = serviceSpec({ ...spec, capAdd: [] }, spec.name, options) as {
      TaskTemplate: { ContainerSpec: Record<string, unknown> };
    };
    const dropped = structuredClone(none);
    delete dropped.TaskTemplate.ContainerSpec.CapabilityAdd;
    expect(serviceFingerprint(dropped)).toBe(serviceFingerprint(none));
  });

  it("changes with an edit behind our back: environment, image, user, mounts, limits", () => {
    const edits: ((c: Record<string, unknown>, t: Record<string, unknown>) => void)[] = [
      (c) => (c.Env = [...(c.Env as string[]), "EXTRA=1"]),
      (c) => (c.Image = "mcp/other:1"),
      (c) => (c.User = "0:0"),
      (c) => (c.Mounts = []),
      (c) => (c.ReadOnly = false),
      (_c, t) => ((t.Resources as { Limits: { MemoryBytes: number } }).Limits.MemoryBytes *= 2),
    ];
    for (const edit of edits) {
      const edited = asStored(body) as { TaskTemplate: Record<string, unknown> };
      edit(edited.TaskTemplate.ContainerSpec as Record<string, unknown>, edited.TaskTemplate);
      expect(serviceFingerprint(edited)).not.toBe(serviceFingerprint(body));
    }
  });
});
