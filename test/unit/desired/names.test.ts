import { describe, expect, it } from "vitest";
import {
  bridgeName,
  containerName,
  networkName,
  replacementName,
  volumeName,
} from "../../../src/desired/names.js";

/** Docker's rule for container, network and volume names. */
const DOCKER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const LONG_USER = "u".repeat(32);
const LONG_SERVER = "s".repeat(32);

describe("containerName", () => {
  it("is readable, suffixed by a short hex hash, deterministic and a valid Docker name", () => {
    const name = containerName("default", "alice", "github");
    expect(name).toMatch(/^mcp-alice-github-[0-9a-f]{6}$/);
    expect(containerName("default", "alice", "github")).toBe(name);
    expect(name).toMatch(DOCKER_NAME);
    expect(containerName("default", LONG_USER, "my_server-1")).toMatch(DOCKER_NAME);
  });

  it("tells user a-b + server c from user a + server b-c", () => {
    const first = containerName("default", "a-b", "c");
    const second = containerName("default", "a", "b-c");
    // The readable part is the same, only the hash tells them apart.
    expect(first.startsWith("mcp-a-b-c-")).toBe(true);
    expect(second.startsWith("mcp-a-b-c-")).toBe(true);
    expect(first).not.toBe(second);
  });

  it("differs per user, per server and per installation", () => {
    const base = containerName("default", "alice", "github");
    expect(containerName("default", "bob", "github")).not.toBe(base);
    expect(containerName("default", "alice", "time")).not.toBe(base);
    expect(containerName("staging", "alice", "github")).not.toBe(base);
    expect(containerName("staging", "alice", "github")).toMatch(/^mcp-alice-github-[0-9a-f]{6}$/);
  });
});

describe("replacementName", () => {
  it("appends -next- and the first 8 characters of the spec hash", () => {
    expect(replacementName("mcp-alice-time-abcdef", "0123456789abcdef")).toBe(
      "mcp-alice-time-abcdef-next-01234567",
    );
    expect(replacementName("mcp-a", "ff")).toBe("mcp-a-next-ff");
  });
});

describe("networkName", () => {
  it("keeps the contract name mcp-net-<user> for the default installation", () => {
    expect(networkName("default", "alice")).toBe("mcp-net-alice");
    expect(networkName("default", "a-b")).toBe("mcp-net-a-b");
  });

  it("gives every other installation its own name", () => {
    const staging = networkName("staging", "alice");
    expect(staging).toMatch(/^mcp-net-alice-[0-9a-f]{6}$/);
    expect(staging).not.toBe(networkName("default", "alice"));
    expect(networkName("test-1", "alice")).not.toBe(staging);
    expect(networkName("staging", "alice")).toBe(staging);
    expect(staging).toMatch(DOCKER_NAME);
  });
});

describe("bridgeName", () => {
  it("never exceeds the 15 characters Linux allows, even for the longest user id", () => {
    for (const user of ["a", "alice", LONG_USER, "Z".repeat(32)]) {
      const name = bridgeName("some-long-installation-name", user);
      expect(name.length).toBeLessThanOrEqual(15);
      expect(name).toMatch(/^[a-z0-9-]+$/);
    }
    expect(bridgeName("default", "alice")).toMatch(/^mcpbr-[0-9a-f]{9}$/);
  });

  it("differs for users sharing an 8-character prefix (the original userID[:8] collision)", () => {
    const names = new Set(
      ["engineer1", "engineer2", "engineering", "engineer"].map((u) => bridgeName("default", u)),
    );
    expect(names.size).toBe(4);
  });

  it("is deterministic and differs per installation", () => {
    expect(bridgeName("default", "alice")).toBe(bridgeName("default", "alice"));
    expect(bridgeName("staging", "alice")).not.toBe(bridgeName("default", "alice"));
  });
});

describe("volumeName", () => {
  it("names the area and a slug of the sub-path, with a hash suffix", () => {
    expect(volumeName("default", "alice", "data", "")).toMatch(/^mcp-alice-data-[0-9a-f]{32}$/);
    expect(volumeName("default", "alice", "data", "github/cache")).toMatch(
      /^mcp-alice-data-github-cache-[0-9a-f]{32}$/,
    );
    expect(volumeName("default", "alice", "cache", "")).toMatch(/^mcp-alice-cache-[0-9a-f]{32}$/);
  });

  it("keeps sub-paths apart whose slugs are equal", () => {
    const nested = volumeName("default", "alice", "data", "a/b");
    const dashed = volumeName("default", "alice", "data", "a-b");
    expect(nested.slice(0, -33)).toBe(dashed.slice(0, -33));
    expect(nested).not.toBe(dashed);
  });

  it("keeps areas, users and installations apart", () => {
    const base = volumeName("default", "alice", "data", "x");
    expect(volumeName("default", "alice", "config", "x")).not.toBe(base);
    expect(volumeName("default", "bob", "data", "x")).not.toBe(base);
    expect(volumeName("other", "alice", "data", "x")).not.toBe(base);
    // user a-b area data vs user a + area "b-data" cannot be confused either
    expect(volumeName("default", "a-b", "data", "")).not.toBe(volumeName("default", "a", "b-data", ""));
  });

  it("cannot be matched by another user's crafted path: the readable part collides, the 128-bit hash does not", () => {
    // user "b-data-x" holds {USER_DATA}/ws; user "b" crafts a path whose readable part is the same
    const victim = volumeName("default", "b-data-x", "data", "ws");
    const attacker = volumeName("default", "b", "data", "x/data/ws");
    expect(victim.slice(0, -33)).toBe("mcp-b-data-x-data-ws");
    expect(attacker.slice(0, -33)).toBe("mcp-b-data-x-data-ws");
    expect(attacker).not.toBe(victim);
    // A search like the 0.1 attack (which found a 24-bit collision in seconds) finds none in 200,000 tries.
    const names = new Set([victim]);
    for (let i = 0; i < 200_000; i++) {
      const name = volumeName("default", "b", "data", `x-data-ws/n${i.toString(36)}`);
      expect(names.has(name)).toBe(false);
    }
  });

  it("caps the slug at 40 characters and stays a valid Docker name", () => {
    const deep = Array.from({ length: 8 }, (_, i) => `segment${i}-with-a-long-name`).join("/");
    const name = volumeName("default", LONG_USER, "config", deep);
    const slug = name.slice(`mcp-${LONG_USER}-config-`.length, -33);
    expect(slug.length).toBe(40);
    expect(name).toMatch(DOCKER_NAME);
    expect(volumeName("default", LONG_USER, "data", `${LONG_SERVER}.v2`)).toMatch(DOCKER_NAME);
  });
});
