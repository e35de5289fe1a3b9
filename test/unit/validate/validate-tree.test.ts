import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { formatProblem } from "../../../src/validate/problem.js";
import {
  type ValidateTreeOptions,
  validateTree,
  validateTreeReport,
} from "../../../src/validate/validate-tree.js";
import { useTempDirs } from "../catalog/fixtures.js";
import { EXAMPLE_DIR, copyExample, editJson, serverAt, serversOf } from "./example-tree.js";

const tempDir = useTempDirs("mcp-portal-validate-");

async function brokenCopy(breakIt: (dir: string) => Promise<void>): Promise<string> {
  const dir = await copyExample(path.join(await tempDir(), "data"));
  await breakIt(dir);
  return dir;
}

async function lines(dir: string, options: ValidateTreeOptions = {}): Promise<string[]> {
  return (await validateTree(dir, options)).map(formatProblem);
}

/** A well-formed secrets.env line; validate only reads names, it never decrypts. */
const sealed = (name: string) => `${name}=enc:v1:k1:${Buffer.alloc(40, 7).toString("base64")}\n`;

const OFFICIAL = "catalogs/base/official.json";
const COMMUNITY = "catalogs/base/community.json";
const PRODUCTION = "catalogs/overlays/production.json";

interface Case {
  name: string;
  breakIt: (dir: string) => Promise<void>;
  options?: ValidateTreeOptions;
  expected: string[];
}

const CASES: Case[] = [
  {
    name: "malformed JSON, with line and column",
    breakIt: (dir) =>
      writeFile(
        path.join(dir, "users/bob/enabled-servers.json"),
        '{\n  "servers": [\n    { "id": "notes" }\n  ]\n  "suspend": false\n}\n',
      ),
    expected: [
      "users/bob/enabled-servers.json: line 5, column 3: invalid JSON: Expected ',' or '}' after property value",
    ],
  },
  {
    name: "an unknown field",
    breakIt: (dir) => editJson(dir, OFFICIAL, (c) => void (serverAt(c, 0).imgae = "mcp/time")),
    expected: [`${OFFICIAL}: $.servers[0].imgae: unknown field`],
  },
  {
    name: "a missing field",
    breakIt: (dir) => editJson(dir, COMMUNITY, (c) => void delete serverAt(c, 3).name),
    expected: [`${COMMUNITY}: $.servers[3].name: Invalid input: expected string, received undefined`],
  },
  {
    name: "a bad server id",
    breakIt: (dir) =>
      editJson(dir, "users/alice/custom-servers.json", (c) => void (serverAt(c, 0).id = "scratch/pad")),
    expected: [
      "users/alice/custom-servers.json: $.servers[0].id: server id must match ^[a-zA-Z0-9_-]{1,32}$",
    ],
  },
  {
    name: "user directories that are not user ids",
    breakIt: async (dir) => {
      await mkdir(path.join(dir, "users/..."));
      await mkdir(path.join(dir, "users", "d".repeat(33)));
      await mkdir(path.join(dir, "users/bob.smith"));
      await writeFile(path.join(dir, "users/README.md"), "not a directory, not a user\n");
    },
    expected: [
      "users/...: $: directory name is not a valid user id (^[a-zA-Z0-9-]{1,32}$); ignored",
      "users/bob.smith: $: directory name is not a valid user id (^[a-zA-Z0-9-]{1,32}$); ignored",
      `users/${"d".repeat(33)}: $: directory name is not a valid user id (^[a-zA-Z0-9-]{1,32}$); ignored`,
    ],
  },
  {
    name: "a duplicate id within one file",
    breakIt: (dir) => editJson(dir, COMMUNITY, (c) => void serversOf(c).push({ ...serverAt(c, 3) })),
    expected: [`${COMMUNITY}: $.servers[5].id: duplicate server id "http-echo" (first at $.servers[3])`],
  },
  {
    name: "the same id in two base catalogs, naming both files",
    breakIt: (dir) =>
      editJson(
        dir,
        COMMUNITY,
        (c) => void serversOf(c).push({ id: "time", name: "time", image: "mcp/time" }),
      ),
    expected: [
      `${OFFICIAL}: $.servers[0].id: server id "time" is also defined in ${COMMUNITY} ($.servers[5])`,
    ],
  },
  {
    name: "an unknown server id in enabled-servers.json",
    breakIt: (dir) =>
      editJson(dir, "users/bob/enabled-servers.json", (c) => void serversOf(c).push({ id: "weather" })),
    expected: [
      'users/bob/enabled-servers.json: $.servers[2].id: unknown server "weather": not in the base catalogs or users/bob/custom-servers.json',
    ],
  },
  {
    name: "config on a server that is not user_configurable",
    breakIt: (dir) =>
      editJson(
        dir,
        "users/carol/enabled-servers.json",
        (c) => void (serverAt(c, 0).config = { environment: { PORT: "9090" } }),
      ),
    expected: [
      `users/carol/enabled-servers.json: $.servers[0].config: server "http-echo" is not user_configurable (${COMMUNITY}); remove its config`,
    ],
  },
  {
    name: "catalog volumes that escape the user's area",
    breakIt: async (dir) => {
      await editJson(dir, OFFICIAL, (c) => {
        (serverAt(c, 3).volumes as Record<string, unknown>[])[0] = {
          host_path: "{USER_DATA}/../../etc",
          container_path: "/projects",
        };
      });
      await editJson(dir, COMMUNITY, (c) => {
        (serverAt(c, 1).volumes as Record<string, unknown>[])[0] = {
          host_path: "/var/run/docker.sock",
          container_path: "/var/run/docker.sock",
        };
      });
    },
    expected: [
      `${COMMUNITY}: $.servers[1].volumes[0].host_path: "/var/run/docker.sock" is not inside the user's area: absolute host paths are not allowed; use {USER_DATA}/..., {USER_CACHE}/... or {USER_CONFIG}/...`,
      `${OFFICIAL}: $.servers[3].volumes[0].host_path: "{USER_DATA}/../../etc" is not inside the user's area: ".." would escape the user's area`,
    ],
  },
  {
    name: "config and custom-server volumes that escape the user's area",
    breakIt: async (dir) => {
      await editJson(dir, "users/bob/enabled-servers.json", (c) => {
        const config = serverAt(c, 0).config as { volumes: Record<string, unknown>[] };
        (config.volumes[0] as Record<string, unknown>).host_path = "{USER_DATA}/notes/../../alice";
      });
      await editJson(dir, "users/alice/custom-servers.json", (c) => {
        (serverAt(c, 0).volumes as Record<string, unknown>[])[0] = {
          host_path: "{USER_HOME}/scratch",
          container_path: "/scratch",
        };
      });
    },
    expected: [
      `users/alice/custom-servers.json: $.servers[0].volumes[0].host_path: "{USER_HOME}/scratch" is not inside the user's area: unknown placeholder (allowed: {USER_ID}, {USER_DATA}, {USER_CACHE}, {USER_CONFIG})`,
      `users/bob/enabled-servers.json: $.servers[0].config.volumes[0].host_path: "{USER_DATA}/notes/../../alice" is not inside the user's area: ".." would escape the user's area`,
    ],
  },
  {
    name: "images policy.json does not allow, where they are defined",
    breakIt: async (dir) => {
      await editJson(dir, COMMUNITY, (c) => void (serverAt(c, 0).image = "docker.io/someone/sqlite-mcp"));
      await editJson(dir, PRODUCTION, (c) => void (serverAt(c, 1).image = "ghcr.io/acme/time"));
      await editJson(
        dir,
        "users/carol/custom-servers.json",
        (c) => void (serverAt(c, 0).image = "evil/miner"),
      );
    },
    expected: [
      `${COMMUNITY}: $.servers[0].image: image "docker.io/someone/sqlite-mcp" is not allowed by policy.json allowed_images`,
      `${PRODUCTION}: $.servers[1].image: image "ghcr.io/acme/time" is not allowed by policy.json allowed_images`,
      'users/carol/custom-servers.json: $.servers[0].image: image "evil/miner" is not allowed by policy.json allowed_images',
    ],
  },
  {
    name: "a required secret that secrets.env does not declare",
    breakIt: async (dir) => {
      await editJson(
        dir,
        "users/alice/enabled-servers.json",
        (c) => void serversOf(c).push({ id: "github" }),
      );
      await editJson(dir, "users/bob/enabled-servers.json", (c) => void serversOf(c).push({ id: "github" }));
      await writeFile(path.join(dir, "users/bob/secrets.env"), sealed("GITHUB_TOKEN"));
      await writeFile(path.join(dir, "users/carol/secrets.env"), sealed("OTHER"));
      await editJson(
        dir,
        "users/carol/enabled-servers.json",
        (c) => void serversOf(c).push({ id: "github" }),
      );
    },
    expected: [
      'users/alice/enabled-servers.json: $.servers[3]: server "github" requires secret GITHUB_TOKEN, which users/alice/secrets.env does not declare (mcp-portal secrets set alice GITHUB_TOKEN)',
      'users/carol/enabled-servers.json: $.servers[3]: server "github" requires secret GITHUB_TOKEN, which users/carol/secrets.env does not declare (mcp-portal secrets set carol GITHUB_TOKEN)',
    ],
  },
  {
    name: "an invalid secrets.env",
    breakIt: (dir) =>
      writeFile(
        path.join(dir, "users/carol/secrets.env"),
        `# comment\n${sealed("A")}A_TOKEN=ghp_plaintext\n`,
      ),
    expected: [
      "users/carol/secrets.env: line 3: A_TOKEN: value is not encrypted (expected enc:v1:<key-id>:<base64>)",
    ],
  },
  {
    name: "a file over the default 5 MiB cap",
    breakIt: (dir) => writeFile(path.join(dir, "policy.json"), `{}${" ".repeat(5 * 1024 * 1024 - 1)}`),
    expected: ["policy.json: $: file is 5242881 bytes, over the 5242880-byte cap"],
  },
  {
    name: "a file over a configured cap",
    breakIt: (dir) => writeFile(path.join(dir, "policy.json"), `{}${" ".repeat(8998)}`),
    options: { maxFileBytes: 8192 },
    expected: ["policy.json: $: file is 9000 bytes, over the 8192-byte cap"],
  },
  {
    name: "an overlay that is not selected but does not parse",
    breakIt: (dir) =>
      writeFile(
        path.join(dir, "catalogs/overlays/staging.json"),
        '{ "version": "1", "source": "overlay" }\n',
      ),
    expected: [
      "catalogs/overlays/staging.json: $.metadata: Invalid input: expected object, received undefined",
      "catalogs/overlays/staging.json: $.servers: Invalid input: expected array, received undefined",
    ],
  },
  {
    name: "an overlay that adds an incomplete server, even when not selected",
    breakIt: (dir) =>
      editJson(dir, PRODUCTION, (c) => void serversOf(c).push({ id: "weather", image: "mcp/weather" })),
    expected: [
      `${PRODUCTION}: $.servers[4].name: adds server "weather" that no base catalog defines, but: Invalid input: expected string, received undefined`,
    ],
  },
  {
    name: "a selected overlay that does not exist",
    breakIt: async () => {},
    options: { overlays: ["production", "canary"] },
    expected: [
      'catalogs/overlays/canary.json: $: overlay "canary" is selected (MCP_PORTAL_OVERLAYS) but does not exist',
    ],
  },
  {
    name: "a server the selected overlay withdraws",
    breakIt: (dir) =>
      editJson(dir, "users/carol/enabled-servers.json", (c) => void serversOf(c).push({ id: "everything" })),
    options: { overlays: "all" },
    expected: [
      'users/carol/enabled-servers.json: $.servers[3].id: unknown server "everything": not in the base catalogs, the overlays production or users/carol/custom-servers.json',
    ],
  },
  {
    name: "a custom server that takes the id of a server policy.json loosens, enabled or not",
    breakIt: (dir) =>
      editJson(
        dir,
        "users/bob/custom-servers.json",
        (c) => void serversOf(c).push({ id: "playwright", name: "mine", image: "mcp/mine" }),
      ),
    expected: [
      'users/bob/custom-servers.json: $.servers[1].id: server "playwright" in users/bob/custom-servers.json takes the id of a server that policy.json server_security loosens; a user\'s own server never runs with admin-granted settings: give it another id',
    ],
  },
  {
    name: "per-server environment a loosened server will not receive",
    breakIt: async (dir) => {
      await editJson(dir, COMMUNITY, (c) => void (serverAt(c, 1).user_configurable = true));
      await editJson(dir, "policy.json", (c) => {
        c.server_security = { playwright: { user: "0:0", user_env_allow: ["DEBUG"] } };
      });
      await editJson(dir, "users/bob/enabled-servers.json", (c) => {
        serversOf(c).push({
          id: "playwright",
          config: { environment: { LD_PRELOAD: "/data/x.so", DEBUG: "1" } },
        });
      });
    },
    expected: [
      'users/bob/enabled-servers.json: $.servers[2].config.environment.LD_PRELOAD: not passed to the container: policy.json server_security loosens server "playwright" and its user_env_allow does not list it',
    ],
  },
  {
    name: "user volumes on a loosened server that does not allow them",
    breakIt: async (dir) => {
      await editJson(dir, COMMUNITY, (c) => void (serverAt(c, 1).user_configurable = true));
      await editJson(dir, "policy.json", (c) => {
        c.server_security = { playwright: { user: "0:0" } };
      });
      await editJson(dir, "users/bob/enabled-servers.json", (c) => {
        serversOf(c).push({
          id: "playwright",
          config: { volumes: [{ host_path: "{USER_DATA}/bin", container_path: "/usr/local/bin" }] },
        });
      });
    },
    expected: [
      'users/bob/enabled-servers.json: $.servers[2].config.volumes: server "playwright" is loosened by policy.json server_security and its user volumes (config.volumes) are not mounted into it unless server_security.playwright.allow_user_volumes is true: the server is blocked',
    ],
  },
  {
    name: "images MCP_PORTAL_ALLOWED_IMAGES does not allow when policy.json gives no allowed_images",
    breakIt: (dir) => editJson(dir, "policy.json", (c) => void delete c.allowed_images),
    options: { defaultAllowedImages: ["mcp/*", "mcp-portal-demo/stdio-echo"] },
    expected: [
      `${COMMUNITY}: $.servers[3].image: image "mcp-portal-demo/http-echo" is not allowed by MCP_PORTAL_ALLOWED_IMAGES (policy.json gives no allowed_images)`,
      'users/carol/custom-servers.json: $.servers[0].image: image "mcp-portal-demo/http-echo" is not allowed by MCP_PORTAL_ALLOWED_IMAGES (policy.json gives no allowed_images)',
    ],
  },
  {
    name: "a custom-servers.json that names another user",
    breakIt: (dir) => editJson(dir, "users/alice/custom-servers.json", (c) => void (c.user_id = "bob")),
    expected: ['users/alice/custom-servers.json: $.user_id: "bob" does not match the directory users/alice'],
  },
];

describe("validateTree", () => {
  it("finds nothing wrong with manifests/example, with or without its overlays", async () => {
    expect(await validateTree(EXAMPLE_DIR)).toEqual([]);
    expect(await validateTree(EXAMPLE_DIR, { overlays: ["production"] })).toEqual([]);
    expect(await validateTree(EXAMPLE_DIR, { overlays: "all" })).toEqual([]);
  });

  it.each(CASES)("reports $name", async ({ breakIt, options, expected }) => {
    const dir = await brokenCopy(breakIt);
    expect(await lines(dir, options)).toEqual(expected);
  });

  it("does not call an enabled server unknown while the catalog that may define it is invalid", async () => {
    const dir = await brokenCopy(async (d) => {
      await writeFile(path.join(d, COMMUNITY), "{");
      await editJson(d, "users/alice/custom-servers.json", (c) => void (c.source = "base"));
    });
    expect(await lines(dir)).toEqual([
      `${COMMUNITY}: line 1, column 2: invalid JSON: Expected property name or '}'`,
      'users/alice/custom-servers.json: $.source: Invalid input: expected "user"',
    ]);
  });

  it("accepts a tree without users, overlays or policy, and reports a missing data dir", async () => {
    const dir = await brokenCopy(async (d) => {
      await rm(path.join(d, "users"), { recursive: true });
      await rm(path.join(d, "catalogs/overlays"), { recursive: true });
      await rm(path.join(d, "policy.json"));
    });
    expect(await lines(dir)).toEqual([]);
    expect(await lines(path.join(dir, "nope"))).toEqual([
      `.: $: data dir ${path.join(dir, "nope")} does not exist or is not a directory`,
    ]);
  });

  it("reports every refused link, device and over-deep file, each blocking only its own user", async () => {
    const dir = await brokenCopy(async (d) => {
      await rm(path.join(d, "users/carol/custom-servers.json"));
      await symlink("../bob/custom-servers.json", path.join(d, "users/carol/custom-servers.json"));
      await symlink("bob", path.join(d, "users/eve"));
      await symlink("/dev/zero", path.join(d, "users/alice/secrets.env"));
      await writeFile(path.join(path.dirname(d), "outside.json"), "{}");
      await symlink("../../../outside.json", path.join(d, "catalogs/base/outside.json"));
      await writeFile(path.join(d, "users/bob/enabled-servers.json"), "[".repeat(100) + "]".repeat(100));
    });
    expect(await lines(dir)).toEqual([
      "catalogs/base/outside.json: $: resolves outside the data directory; refused",
      "users/alice/secrets.env: $: is a symbolic link; links are refused under users/ (what depends on it is left as it is until it is a real file)",
      "users/bob/enabled-servers.json: line 1, column 65: nested deeper than 64 levels; refused without parsing",
      "users/carol/custom-servers.json: $: is a symbolic link; links are refused under users/ (what depends on it is left as it is until it is a real file)",
      "users/eve: $: is a symbolic link; links are refused under users/ (what depends on it is left as it is until it is a real directory)",
    ]);
  });

  it("returns problems sorted by file", async () => {
    const dir = await brokenCopy(async (d) => {
      await editJson(d, "users/bob/enabled-servers.json", (c) => void serversOf(c).push({ id: "zzz" }));
      await editJson(d, "users/alice/enabled-servers.json", (c) => void serversOf(c).push({ id: "aaa" }));
      await editJson(d, COMMUNITY, (c) => void (serverAt(c, 2).image = "quay.io/x/y"));
    });
    const files = (await validateTree(dir)).map((p) => p.file);
    expect(files).toEqual([COMMUNITY, "users/alice/enabled-servers.json", "users/bob/enabled-servers.json"]);
  });

  it("warns, without failing, about top-level environment a loosened server will not receive", async () => {
    const dir = await brokenCopy(async (d) => {
      await editJson(d, "policy.json", (c) => {
        c.server_security = { echo: { cap_add: ["NET_ADMIN"], user_env_allow: ["LANG"] } };
      });
      await editJson(d, "users/alice/enabled-servers.json", (c) => {
        c.environment = { TZ: "Europe/Berlin", LANG: "de_DE.UTF-8" };
        delete serverAt(c, 0).config;
      });
    });
    const report = await validateTreeReport(dir);
    expect(report.problems).toEqual([]);
    expect(report.warnings.map(formatProblem)).toEqual([
      'users/alice/enabled-servers.json: $.environment.TZ: not passed to server "echo": policy.json server_security loosens server "echo" and its user_env_allow does not list it',
    ]);
  });

  it("says which image allow-list applies: policy.json wins over MCP_PORTAL_ALLOWED_IMAGES", async () => {
    const fromPolicy = await validateTreeReport(EXAMPLE_DIR, { defaultAllowedImages: ["ghcr.io/*"] });
    expect(fromPolicy.allowedImages).toEqual({
      source: "policy.json",
      globs: ["mcp/*", "mcp-portal-demo/*"],
    });
    expect(fromPolicy.problems).toEqual([]);
    expect(fromPolicy.warnings).toEqual([]);

    const dir = await brokenCopy((d) => editJson(d, "policy.json", (c) => void delete c.allowed_images));
    const fromEnvironment = await validateTreeReport(dir, {
      defaultAllowedImages: ["mcp/*", "mcp-portal-demo/*"],
    });
    expect(fromEnvironment.allowedImages).toEqual({
      source: "MCP_PORTAL_ALLOWED_IMAGES",
      globs: ["mcp/*", "mcp-portal-demo/*"],
    });
    expect(fromEnvironment.warnings).toEqual([]);
  });

  it("warns when no allow-list applies at all: no allowed_images and no MCP_PORTAL_ALLOWED_IMAGES", async () => {
    const withoutField = await brokenCopy((d) =>
      editJson(d, "policy.json", (c) => void delete c.allowed_images),
    );
    const withoutFile = await brokenCopy((d) => rm(path.join(d, "policy.json")));
    for (const dir of [withoutField, withoutFile]) {
      const report = await validateTreeReport(dir);
      expect(report.problems).toEqual([]);
      expect(report.allowedImages).toEqual({ source: "none", globs: ["*"] });
      expect(report.warnings.map(formatProblem)).toEqual([
        "policy.json: $.allowed_images: not set, and MCP_PORTAL_ALLOWED_IMAGES is not set either: any image from any registry may run (set one of them)",
      ]);
    }
  });

  it("reports config on a loosened server that is not user_configurable once, as such", async () => {
    const dir = await brokenCopy(async (d) => {
      await editJson(d, "users/bob/enabled-servers.json", (c) => {
        serversOf(c).push({ id: "playwright", config: { environment: { LD_PRELOAD: "/data/x.so" } } });
      });
    });
    expect(await lines(dir)).toEqual([
      `users/bob/enabled-servers.json: $.servers[2].config: server "playwright" is not user_configurable (${COMMUNITY}); remove its config`,
    ]);
  });

  it("checks nothing against an invalid policy.json beyond its own problems", async () => {
    const dir = await brokenCopy(async (d) => {
      await editJson(d, "policy.json", (c) => void (c.server_security = { playwright: { cap_add: "ALL" } }));
      await editJson(
        d,
        "users/bob/custom-servers.json",
        (c) => void serversOf(c).push({ id: "playwright", name: "mine", image: "mcp/mine" }),
      );
    });
    const report = await validateTreeReport(dir);
    expect(report.problems.map(formatProblem)).toEqual([
      "policy.json: $.server_security.playwright.cap_add: Invalid input: expected array, received string",
    ]);
    expect(report.allowedImages).toBeUndefined();
  });
});
