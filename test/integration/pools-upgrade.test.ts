// Upgrading an installation made with 0.1's pools (blocks of 100 ports, /24 subnets, `port_block` labels that
// hold the start alone) to the capacity defaults, on the real engine: no container, port or subnet changes,
// and a new user gets a block recorded with its size and a /27 from the new pool. The port ranges and subnet
// pools are this test's own, so it cannot collide with other tests on the shared engine.
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { bridgeName, networkName } from "../../src/desired/names.js";
import { networkCreateOptions } from "../../src/docker/dockerode-runtime.js";
import { LABELS, ownerLabels, parsePortBlockLabel } from "../../src/labels.js";
import {
  type StartedDaemon,
  readStatus,
  startDaemon,
  testEnv,
  testPortRange,
  waitFor,
} from "../helpers/daemon.js";
import { TestDataDir, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const docker = new Docker();
/** 0.1's pool stands in for 172.20.0.0/16, the new one for 10.199.0.0/16. */
const OLD_POOL = "10.215.0.0/16";
const NEW_POOL = "10.216.0.0/16";
const OLD_USERS = ["bare-a", "bare-b", "bare-c", "sized"];

async function snapshot(installation: string) {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.installation}=${installation}`] },
  });
  const networks = await docker.listNetworks({
    filters: { label: [`${LABELS.installation}=${installation}`] },
  });
  return {
    containers: containers
      .map((c) => ({
        user: c.Labels[LABELS.userId],
        id: c.Id,
        name: c.Names[0],
        hostPort: c.Labels[LABELS.hostPort],
        specHash: c.Labels[LABELS.specHash],
        state: c.State,
      }))
      .sort((a, b) => String(a.name).localeCompare(String(b.name))),
    networks: networks
      .map((n) => ({
        user: n.Labels?.[LABELS.userId],
        id: n.Id,
        name: n.Name,
        subnet: n.IPAM?.Config?.[0]?.Subnet,
        block: n.Labels?.[LABELS.portBlock],
      }))
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}

describeDocker("upgrading 0.1's pools to the capacity defaults", () => {
  const installation = newTestInstallation();
  const ports = testPortRange();
  let data: TestDataDir;
  let running: StartedDaemon | undefined;

  beforeAll(async () => {
    data = await TestDataDir.create();
    await data.baseCatalog("main", [stdioServer("echo"), stdioServer("other")]);
    for (const user of OLD_USERS) await data.enable(user, ["echo", "other"]);
  });

  afterAll(async () => {
    await running?.stop();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("keeps every container, host port and subnet; a new user gets a sized block and a /27", async () => {
    // 0.1 made these networks: a /24 each, the block start alone in the label (blocks of 100).
    const bare = [
      { user: "bare-a", start: ports.start, subnet: "10.215.0.0/24" },
      { user: "bare-b", start: ports.start + 100, subnet: "10.215.1.0/24" },
      { user: "bare-c", start: ports.start + 500, subnet: "10.215.7.0/24" },
    ];
    for (const { user, start, subnet } of bare) {
      await docker.createNetwork(
        networkCreateOptions({
          name: networkName(installation, user),
          bridgeName: bridgeName(installation, user),
          subnet,
          gateway: subnet.replace(/0\/24$/, "1"),
          labels: {
            ...ownerLabels(installation, user),
            [LABELS.networkType]: "user_isolation",
            [LABELS.portBlock]: String(start),
          },
        }),
      );
    }
    // The old settings: blocks of 100, /24s. `sized` gets its network from this run (a sized label, 100 ports).
    const old = testEnv(data.root, installation, {
      MCP_PORTAL_PORT_RANGE_START: String(ports.start),
      MCP_PORTAL_PORT_RANGE_END: String(ports.end),
      MCP_PORTAL_PORTS_PER_USER: "100",
      MCP_PORTAL_PORT_EXCLUDE: "",
      MCP_PORTAL_USER_NETWORK_SUBNET_BASE: OLD_POOL,
      MCP_PORTAL_USER_NETWORK_SUBNET_SIZE: "24",
    });
    running = await startDaemon(old);
    const before = await waitFor("8 containers running", async () => {
      const s = await snapshot(installation);
      return s.containers.length === 8 && s.containers.every((c) => c.state === "running") ? s : undefined;
    });
    await running.stop();
    running = undefined;
    expect(before.networks.map((n) => n.block).slice(0, 3)).toEqual(bare.map((b) => String(b.start)));
    const sized = before.networks.find((n) => n.user === "sized")!;
    expect(parsePortBlockLabel(sized.block)?.size).toBe(100);
    expect(sized.subnet).toMatch(/^10\.215\.\d+\.0\/24$/);

    // The new defaults for block size, subnet size and excluded ports; a range that, like 10000-29999 for
    // 20000-29999, starts lower and contains the old one; a new pool.
    await data.enable("newbie", ["echo", "other"]);
    const upgraded = testEnv(data.root, installation, {
      MCP_PORTAL_PORT_RANGE_START: String(ports.start - 1000),
      MCP_PORTAL_PORT_RANGE_END: String(ports.end),
      MCP_PORTAL_USER_NETWORK_SUBNET_BASE: NEW_POOL,
    });
    delete upgraded.MCP_PORTAL_PORTS_PER_USER;
    running = await startDaemon(upgraded);
    expect(running.daemon.config.portsPerUser).toBe(16);
    expect(running.daemon.config.subnetPool.prefixLength).toBe(27);
    const after = await waitFor("the new user's containers running", async () => {
      const s = await snapshot(installation);
      const fresh = s.containers.filter((c) => c.user === "newbie");
      return fresh.length === 2 && fresh.every((c) => c.state === "running") ? s : undefined;
    });

    // Nothing of the old users changed: same containers (so same spec hash), host ports, networks, subnets, labels.
    expect(after.containers.filter((c) => c.user !== "newbie")).toEqual(before.containers);
    expect(after.networks.filter((n) => n.user !== "newbie")).toEqual(before.networks);
    for (const user of OLD_USERS) {
      const status = await readStatus(running.daemon.config.stateDir, user);
      expect(status?.phase, user).toBe("Ready");
      expect(status?.port_block?.end, user).toBe(status!.port_block!.start + 99);
    }

    // The new user: a block of 16 recorded with its size, clear of every old block, and a /27 of the new pool.
    const fresh = after.networks.find((n) => n.user === "newbie")!;
    const label = parsePortBlockLabel(fresh.block);
    expect(label).toMatchObject({ size: 16, legacy: false });
    expect(label!.start).toBeGreaterThanOrEqual(ports.start - 1000);
    const oldBlocks = before.networks.map((n) => parsePortBlockLabel(n.block)!);
    for (const old of oldBlocks) {
      const overlap = label!.start <= old.start + old.size - 1 && old.start <= label!.start + 15;
      expect(overlap, `${fresh.block} overlaps ${old.start}`).toBe(false);
    }
    expect(fresh.subnet).toMatch(/^10\.216\.0\.0\/27$/);
    for (const c of after.containers.filter((c) => c.user === "newbie")) {
      const port = Number(c.hostPort);
      expect(port).toBeGreaterThanOrEqual(label!.start);
      expect(port).toBeLessThanOrEqual(label!.start + 15);
    }
    await running.stop();
    running = undefined;
  }, 180_000);
});
