import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { schemaCommand } from "../../../src/commands/schema.js";
import { generateJsonSchemas } from "../../../src/schema/json-schema.js";
import { useTempDirs } from "../catalog/fixtures.js";
import { REPO_ROOT } from "./example-tree.js";
import { runCli } from "../../helpers/cli-io.js";

const tempDir = useTempDirs("mcp-portal-schema-");
const COMMITTED = path.join(REPO_ROOT, "manifests/schemas");

function schema(args: string[]) {
  return runCli(schemaCommand, args);
}

describe("JSON Schemas", () => {
  it("manifests/schemas matches what the code generates (run `mcp-portal schema` after changing src/schema)", async () => {
    const out = await tempDir();
    expect((await schema(["--out", out])).code).toBe(0);
    const generated = (await readdir(out)).sort();
    expect((await readdir(COMMITTED)).sort()).toEqual(generated);
    for (const name of generated) {
      const committed = await readFile(path.join(COMMITTED, name), "utf8");
      expect(committed, `manifests/schemas/${name} is out of date`).toBe(
        await readFile(path.join(out, name), "utf8"),
      );
    }
    expect((await schema(["--check", "--out", COMMITTED])).code).toBe(0);
  });

  it("are stable, pretty, end in a newline and describe input shapes (defaults optional)", () => {
    const first = generateJsonSchemas();
    expect(generateJsonSchemas()).toEqual(first);
    for (const [name, content] of first) {
      expect(content.endsWith("}\n"), name).toBe(true);
      expect(content).toBe(`${JSON.stringify(JSON.parse(content), null, 2)}\n`);
    }
    const enabled = JSON.parse(first.get("enabled-servers.schema.json") ?? "{}") as {
      required: string[];
      additionalProperties: boolean;
    };
    expect(enabled.required).toEqual(["servers"]);
    expect(enabled.additionalProperties).toBe(false);
  });

  it("--check reports files that differ and exits 1", async () => {
    const out = await tempDir();
    const result = await schema(["--check", "--out", out]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("enabled-servers.schema.json: out of date");
    expect((await schema(["--nope"])).code).toBe(2);
  });
});
