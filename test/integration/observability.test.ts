import { readFile } from "node:fs/promises";
import path from "node:path";
import type { AddressInfo } from "node:net";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LABELS } from "../../src/labels.js";
import { type StartedDaemon, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir, httpServer, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";
import { DockerSocketProxy } from "../helpers/socket-proxy.js";
import { hasPromtool, promtool, skipPromtool } from "../unit/observability/promtool.js";

const docker = new Docker();

function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every((w) => line.includes(w))) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

describeDocker("observability of a running daemon", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let proxy: DockerSocketProxy;
  let started: StartedDaemon;
  let base: string;

  beforeAll(async () => {
    proxy = await DockerSocketProxy.start();
    data = await TestDataDir.create();
    await data.baseCatalog("main", [stdioServer("echo", { environment: { V: "1" } }), httpServer("web")]);
    await data.enable("alice", ["echo", "web"]);
    await data.enable("bob", ["echo"]);
    started = await startDaemon(testEnv(data.root, installation, { DOCKER_HOST: proxy.dockerHost }), {
      listen: true,
    });
    const address = started.daemon.http!.server.address() as AddressInfo;
    base = `http://127.0.0.1:${address.port}`;
  });

  afterAll(async () => {
    await started?.stop();
    await proxy?.dispose();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  const scrape = async () => (await fetch(`${base}/metrics`)).text();

  it("exports metrics that move with reconciles and pass promtool", async () => {
    const first = await scrape();
    expect(sample(first, "mcp_portal_reconcile_total", { result: "success" })).toBeGreaterThanOrEqual(2);
    expect(sample(first, "mcp_portal_managed_containers", { state: "running" })).toBe(3);
    expect(sample(first, "mcp_portal_desired_servers")).toBe(3);
    expect(
      sample(first, "mcp_portal_docker_operations_total", {
        operation: "container_create",
        result: "success",
      }),
    ).toBe(3);
    expect(sample(first, "mcp_portal_users", { phase: "Ready" })).toBe(2);
    expect(sample(first, "mcp_portal_docker_up")).toBe(1);
    expect(sample(first, "mcp_portal_port_pool_capacity")).toBeGreaterThan(0);
    expect(first).toContain("mcp_portal_build_info{version=");

    const victim = (
      await docker.listContainers({
        filters: { label: [`${LABELS.installation}=${installation}`, `${LABELS.userId}=bob`] },
      })
    )[0]!;
    await docker.getContainer(victim.Id).remove({ force: true });
    const second = await waitFor("drift corrected", async () => {
      const text = await scrape();
      const created = sample(text, "mcp_portal_docker_operations_total", {
        operation: "container_create",
        result: "success",
      });
      return created === 4 && sample(text, "mcp_portal_managed_containers", { state: "running" }) === 3
        ? text
        : undefined;
    });
    expect(sample(second, "mcp_portal_reconcile_total")).toBeGreaterThan(
      sample(first, "mcp_portal_reconcile_total"),
    );
    expect(sample(second, "mcp_portal_managed_containers", { state: "running" })).toBe(3);
    // Bounded cardinality: no container ids or user ids in any label.
    expect(second).not.toContain(victim.Id.slice(0, 12));
    expect(second).not.toMatch(/user_id="|user="/);

    if (!skipPromtool) {
      expect(hasPromtool).toBe(true);
      const check = promtool(["check", "metrics"], second);
      expect(check.output).toBe("");
      expect(check.status).toBe(0);
    }
  });

  it("reports liveness always and readiness only while Docker answers", async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    await proxy.down();
    const notReady = await waitFor("readyz 503", async () => {
      const res = await fetch(`${base}/readyz`);
      return res.status === 503 ? ((await res.json()) as { reason?: string }) : undefined;
    });
    expect(notReady.reason).toBe("docker unreachable");
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await proxy.up();
    await waitFor("readyz 200 again", async () => (await fetch(`${base}/readyz`)).status === 200);
    // The event stream reconnects (and resyncs) after the outage.
    await waitFor(
      "events reconnected",
      async () => sample(await scrape(), "mcp_portal_docker_events_reconnects_total") >= 1,
    );
  });

  it("audits every mutation it made (secret values are checked in secrets.test.ts)", async () => {
    await data.baseCatalog("main", [stdioServer("echo", { environment: { V: "2" } }), httpServer("web")]);
    await waitFor("echo replaced twice", async () => {
      const text = await scrape();
      return (
        sample(text, "mcp_portal_docker_operations_total", {
          operation: "container_rename",
          result: "success",
        }) >= 2
      );
    });
    await started.daemon.controller.idle();
    await started.daemon.audit.flush();
    const lines = (await readFile(path.join(data.stateDir, "audit.log"), "utf8"))
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as { event_type: string; action: string; result: string; user_id: string | null },
      );
    const counts = started.daemon.runtime.callCounts;
    const pairs: [
      string,
      (
        | "container_create"
        | "container_start"
        | "container_stop"
        | "container_remove"
        | "container_rename"
        | "network_create"
        | "volume_create"
      ),
    ][] = [
      ["create_container", "container_create"],
      ["start_container", "container_start"],
      ["stop_container", "container_stop"],
      ["remove_container", "container_remove"],
      ["rename_container", "container_rename"],
      ["create_network", "network_create"],
      ["create_volume", "volume_create"],
    ];
    for (const [action, operation] of pairs) {
      const audited = lines.filter((l) => l.action === action).length;
      expect(audited, action).toBe(counts.get(operation) ?? 0);
      expect(audited, action).toBeGreaterThan(0);
    }
    expect(lines.some((l) => l.event_type === "DESIRED_STATE_CHANGE" && l.user_id === null)).toBe(true);
    expect(
      lines.every((l) => l.result === "success" || l.result === "failure" || l.result === "blocked"),
    ).toBe(true);
  });
});
