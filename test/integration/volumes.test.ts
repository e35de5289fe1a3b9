// The hardening issue's volume-name attack on the real engine: Docker answers a volume create of an existing name
// with the existing volume, so a name collision used to mount another user's data. Now a volume is mounted only
// when its labels name its owner, and volumes made under 0.1's names are adopted by their labels.
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { volumeName } from "../../src/desired/names.js";
import { LABELS, ownerLabels } from "../../src/labels.js";
import { type StartedDaemon, readStatus, startDaemon, testEnv } from "../helpers/daemon.js";
import { TestDataDir, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const docker = new Docker();

describeDocker("volumes against a real engine", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let started: StartedDaemon;
  // Another user's data behind the name alice's data volume gets (as a collision would have put it there).
  const taken = volumeName(installation, "alice", "data", "");
  const foreignLabels = {
    [LABELS.installation]: installation,
    [LABELS.userId]: "victim",
    note: "victim-data",
  };
  // bob's volumes as 0.1 named them (a 24-bit hash), with the labels 0.1 gave them.
  const legacy = (area: string) => `mcp-bob-${area}-0a1b2c`;

  beforeAll(async () => {
    await docker.createVolume({ Name: taken, Labels: foreignLabels });
    for (const area of ["data", "cache"])
      await docker.createVolume({
        Name: legacy(area),
        Labels: {
          ...ownerLabels(installation, "bob"),
          [LABELS.volumeArea]: area,
          [LABELS.volumePath]: "",
        },
      });
    data = await TestDataDir.create();
    await data.baseCatalog("main", [stdioServer("echo")]);
    await data.enable("alice", ["echo"]);
    await data.enable("bob", ["echo"]);
    started = await startDaemon(testEnv(data.root, installation));
  });

  afterAll(async () => {
    await started?.stop();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("never mounts a volume of the right name whose labels name someone else: VolumeConflict, data untouched", async () => {
    const status = await readStatus(data.stateDir, "alice");
    expect(status?.servers[0]).toMatchObject({ id: "echo", phase: "Blocked", reason: "VolumeConflict" });
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.installation}=${installation}`, `${LABELS.userId}=alice`] },
    });
    expect(containers).toEqual([]);
    expect((await docker.getVolume(taken).inspect()).Labels).toEqual(foreignLabels);
  });

  it("adopts volumes made under older names by their labels: no new volume, the old data mounted", async () => {
    const [bob] = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.installation}=${installation}`, `${LABELS.userId}=bob`] },
    });
    expect(bob?.State).toBe("running");
    const info = await docker.getContainer(bob!.Id).inspect();
    expect(info.Mounts.map((m) => m.Name).sort()).toEqual([legacy("cache"), legacy("data")]);
    const { Volumes } = await docker.listVolumes({
      filters: { label: [`${LABELS.installation}=${installation}`, `${LABELS.userId}=bob`] },
    });
    expect((Volumes ?? []).map((v) => v.Name).sort()).toEqual([legacy("cache"), legacy("data")]);
  });
});
