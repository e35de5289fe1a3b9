import { z } from "zod";
import { ServerId } from "../util/ids.js";
import { Environment, SchemaRef, VolumeMount } from "./common.js";
import { ToolPolicy } from "./tools.js";

export const ServerConfig = z.strictObject({
  environment: Environment.optional(),
  volumes: z.array(VolumeMount).max(32).optional(),
});
export type ServerConfig = z.infer<typeof ServerConfig>;

export const EnabledServer = z.strictObject({
  id: ServerId,
  config: ServerConfig.optional(),
  /**
   * Which of the server's tools this user sees and may call (the gateway filters tools/list and refuses the
   * rest). Allowed on every server, configurable or not; never part of the container's spec.
   */
  tools: ToolPolicy.optional(),
});
export type EnabledServer = z.infer<typeof EnabledServer>;

export const EnabledServersFile = z
  .strictObject({
    $schema: SchemaRef,
    /** Environment applied to all of this user's servers (the original design's per-user environment). */
    environment: Environment.prefault({}),
    servers: z.array(EnabledServer).max(1_000),
    /** Leave everything as it is: no creates, replaces or removals for this user. */
    suspend: z.boolean().default(false),
  })
  .superRefine((file, ctx) => {
    const seen = new Map<string, number>();
    file.servers.forEach((server, i) => {
      const first = seen.get(server.id);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["servers", i, "id"],
          message: `server "${server.id}" is enabled twice (first at $.servers[${first}])`,
        });
      } else {
        seen.set(server.id, i);
      }
    });
  });
export type EnabledServersFile = z.infer<typeof EnabledServersFile>;
