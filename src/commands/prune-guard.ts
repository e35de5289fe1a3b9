import { readFile } from "node:fs/promises";
import { PruneLatchFile, pruneLatchPath } from "../contracts/prune-latch.js";
import { AuditLog, parseAuditMaxBytes } from "../observability/audit.js";
import { releaseLatchFile } from "../reconcile/prune-guard.js";
import { parseSubcommand, unknownSubcommand, usageFailure } from "./common.js";
import { type CommandIo, UsageError } from "./io.js";

const USAGE = `Usage: mcp-portal prune-guard <command> [--state-dir DIR] [--data-dir DIR]

Commands:
  status    whether the mass-prune latch is tripped, since when and why
  release   release it: the removals the controller holds back go ahead (audited)

The controller never removes most of the managed containers at once: when the removals it would make exceed
MCP_PORTAL_MASS_PRUNE_SHARE of them (at least MCP_PORTAL_MASS_PRUNE_MIN), it removes nothing and the latch
trips, and stays tripped (across restarts) until the desired state is back within the limit or this command,
the admin API (POST /api/v1/admin/prune-guard/release) or --allow-mass-prune releases it. A running controller
picks up a release at its next quiet point (seconds).

Exit codes: status 0 open, 3 tripped; release 0; 1 error, 2 usage.
`;

/** `mcp-portal prune-guard ...`. */
export async function pruneGuardCommand(args: string[], io: CommandIo): Promise<number> {
  try {
    const parsed = parseSubcommand("prune-guard", args, io.env);
    if (parsed === "help") {
      io.stdout.write(USAGE);
      return 0;
    }
    const { subcommand, stateDir, expect } = parsed;
    switch (subcommand) {
      case "status": {
        expect(0, "");
        const latch = await readLatch(stateDir);
        if (!latch?.tripped) {
          io.stdout.write(
            `open${latch?.released_at ? ` (last released ${latch.released_at} by ${latch.released_by ?? "?"})` : ""}\n`,
          );
          return 0;
        }
        io.stdout.write(
          `tripped since ${latch.tripped_at ?? "?"}: ${latch.reason ?? "no reason recorded"}\n`,
        );
        return 3;
      }
      case "release": {
        expect(0, "");
        const before = await readLatch(stateDir);
        await releaseLatchFile(stateDir, "cli");
        const audit = new AuditLog({ stateDir, maxBytes: parseAuditMaxBytes(io.env) });
        await audit.write({
          event_type: "ACTION_BLOCKED",
          user_id: null,
          action: "release_prune_guard",
          resource: "installation",
          result: "success",
          details: { by: "cli", was_tripped: before?.tripped === true },
        });
        await audit.close();
        io.stdout.write(
          before?.tripped
            ? "released: the running controller carries out the held removals at its next quiet point\n"
            : "the latch was not tripped; released anyway\n",
        );
        return 0;
      }
      default:
        throw unknownSubcommand(subcommand);
    }
  } catch (error) {
    if (error instanceof UsageError) return usageFailure(io, USAGE, error.message);
    io.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

async function readLatch(stateDir: string): Promise<PruneLatchFile | undefined> {
  let text: string;
  try {
    text = await readFile(pruneLatchPath(stateDir), "utf8");
  } catch {
    return undefined;
  }
  const parsed = PruneLatchFile.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : { tripped: true, reason: `${pruneLatchPath(stateDir)} is invalid` };
}
