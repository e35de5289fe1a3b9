import path from "node:path";
import { z } from "zod";

/*
 * `<state-dir>/prune-guard.json`: the mass-prune latch. Written by the controller when the latch trips or is
 * released; written by `mcp-portal prune-guard release` to release it (the running controller reads it before
 * each decision). README, "How the loop behaves", describes it for operators.
 */
export const PruneLatchFile = z.object({
  tripped: z.boolean(),
  /** When it last tripped, and why (the counts that exceeded the limit). */
  tripped_at: z.string().optional(),
  reason: z.string().optional(),
  /** When and by whom (cli, api:<token id>, flag) it was last released. */
  released_at: z.string().optional(),
  released_by: z.string().optional(),
});
export type PruneLatchFile = z.infer<typeof PruneLatchFile>;

export function pruneLatchPath(stateDir: string): string {
  return path.join(stateDir, "prune-guard.json");
}
