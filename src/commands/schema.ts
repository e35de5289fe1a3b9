import { readFile } from "node:fs/promises";
import path from "node:path";
import { DEFAULT_SCHEMA_DIR, generateJsonSchemas } from "../schema/json-schema.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { commandOptions, parseCommandArgs } from "./common.js";
import type { CommandIo } from "./io.js";

const USAGE = `Usage: mcp-portal schema [--out DIR] [--check]

Writes a JSON Schema for every file format of the data dir (catalogs, enabled-servers.json, policy.json).

Options:
  --out DIR   target directory (default ${DEFAULT_SCHEMA_DIR}, relative to the current directory)
  --check     write nothing; exit 1 when a file in DIR differs from what this version generates

Exit codes: 0 ok, 1 files out of date (--check), 2 usage error.
`;

/** `mcp-portal schema`; `args` are the arguments after "schema". */
export async function schemaCommand(args: string[], io: CommandIo): Promise<number> {
  const values = await commandOptions(io, USAGE, () => {
    const { values } = parseCommandArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        out: { type: "string", default: DEFAULT_SCHEMA_DIR },
        check: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    return values.help ? "help" : values;
  });
  if (typeof values === "number") return values;
  const outDir = path.resolve(values.out);
  const files = generateJsonSchemas();
  if (values.check) {
    const stale: string[] = [];
    for (const [name, content] of files) {
      const current = await readFile(path.join(outDir, name), "utf8").catch(() => undefined);
      if (current !== content) stale.push(name);
    }
    for (const name of stale)
      io.stderr.write(`${path.join(values.out, name)}: out of date (run mcp-portal schema)\n`);
    return stale.length === 0 ? 0 : 1;
  }
  for (const [name, content] of files) {
    await writeFileAtomic(path.join(outDir, name), content);
    io.stdout.write(`wrote ${path.join(values.out, name)}\n`);
  }
  return 0;
}
