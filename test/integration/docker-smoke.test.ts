// Proves the engine the integration tests rely on works: labelled networks by label filter, and a hardened
// container from the local busybox image that runs as 1000:1000 with no capabilities and no new privileges.
import Docker from "dockerode";
import { DockerodeRuntime } from "../../src/docker/dockerode-runtime.js";
import { afterAll, expect, it } from "vitest";
import {
  LABEL_INSTALLATION,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  TEST_BUSYBOX_IMAGE,
  TEST_IMAGE_USER,
  cleanupInstallation,
  describeDocker,
  testInstallation,
} from "../helpers/docker.js";

const CALL_MS = 30_000;
const signal = () => AbortSignal.timeout(CALL_MS);

/** Joins the payloads of Docker's multiplexed log frames (8-byte header: stream, 0, 0, 0, big-endian size). */
function demuxLogs(buf: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buf.length) {
    const size = buf.readUInt32BE(offset + 4);
    parts.push(buf.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(parts).toString("utf8");
}

describeDocker("Docker Engine smoke test", () => {
  const docker = new Docker();
  const installation = testInstallation();
  const labels = { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE, [LABEL_INSTALLATION]: installation };
  const labelFilter = JSON.stringify({ label: [`${LABEL_INSTALLATION}=${installation}`] });

  afterAll(async () => {
    await cleanupInstallation(docker, installation);
  });

  it("creates, finds by label, and removes a labelled network", async () => {
    const name = `${installation}-smoke`;
    const network = await docker.createNetwork({
      Name: name,
      Driver: "bridge",
      Labels: labels,
      abortSignal: signal(),
    });

    const found = await docker.listNetworks({ filters: labelFilter, abortSignal: signal() });
    expect(found.map((n) => n.Id)).toEqual([network.id]);
    expect(found[0]?.Labels).toMatchObject(labels);

    await network.remove({ abortSignal: signal() });
    const after = await docker.listNetworks({ filters: labelFilter, abortSignal: signal() });
    expect(after).toEqual([]);
  });

  it("runs a hardened container and reads its logs", async () => {
    const container = await docker.createContainer({
      name: `${installation}-smoke`,
      Image: TEST_BUSYBOX_IMAGE,
      Cmd: [
        "sh",
        "-c",
        'echo "hello uid=$(id -u) gid=$(id -g)"; grep -E "^(CapEff|NoNewPrivs):" /proc/self/status; ' +
          "echo scratch > /tmp/probe && cat /tmp/probe",
      ],
      User: TEST_IMAGE_USER,
      Labels: labels,
      HostConfig: {
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges"],
        PidsLimit: 64,
        Memory: 64 * 1024 * 1024,
        Tmpfs: { "/tmp": "rw,noexec,nosuid,size=16m" },
        NetworkMode: "none",
      },
      abortSignal: signal(),
    });

    await container.start({ abortSignal: signal() });
    const exit = (await container.wait({ abortSignal: signal() })) as { StatusCode: number };
    const output = demuxLogs(
      await container.logs({ stdout: true, stderr: true, follow: false, abortSignal: signal() }),
    );
    expect(exit.StatusCode, output).toBe(0);
    expect(output).toContain("hello uid=1000 gid=1000");
    expect(output).toMatch(/CapEff:\s+0{16}/);
    expect(output).toMatch(/NoNewPrivs:\s+1/);
    expect(output).toContain("scratch");

    const info = await container.inspect({ abortSignal: signal() });
    expect(info.HostConfig.PidsLimit).toBe(64);
    expect(info.HostConfig.Memory).toBe(64 * 1024 * 1024);

    await container.remove({ force: true, abortSignal: signal() });
    const left = await docker.listContainers({ all: true, filters: labelFilter, abortSignal: signal() });
    expect(left).toEqual([]);
  });

  it("answers a volume create of an existing name with the existing volume's labels (what the owner check reads)", async () => {
    const runtime = new DockerodeRuntime(docker, { timeoutMs: CALL_MS });
    const name = `mcp-smoke-vol-${installation}`;
    const owner = { ...labels, "mcp.portal.user_id": "alice" };
    const first = await runtime.createVolume({ name, labels: owner });
    expect(first).toEqual({ name, labels: owner });
    const again = await runtime.createVolume({
      name,
      labels: { ...labels, "mcp.portal.user_id": "mallory" },
    });
    expect(again).toEqual({ name, labels: owner });
  });
});
