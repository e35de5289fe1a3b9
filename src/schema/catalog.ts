import { z } from "zod";
import { SecretName, ServerId } from "../util/ids.js";
import {
  Environment,
  HealthCheck,
  ImageName,
  ImageTag,
  PortMapping,
  ResourceRequest,
  SchemaRef,
  VolumeMount,
} from "./common.js";
import { Egress } from "./egress.js";

/** Longest idle timeout a catalog or policy may give: 30 days. */
export const MAX_IDLE_TIMEOUT_SECONDS = 30 * 24 * 3600;
export const IdleTimeoutSeconds = z.number().int().min(0).max(MAX_IDLE_TIMEOUT_SECONDS);

export const Transport = z.enum(["stdio", "sse", "streamable-http"]);
export type Transport = z.infer<typeof Transport>;

const serverFields = {
  id: ServerId,
  name: z.string().min(1).max(128),
  display_name: z.string().max(256).optional(),
  description: z.string().max(4096).optional(),
  category: z.string().max(64).optional(),
  image: ImageName,
  tag: ImageTag.default("latest"),
  /** Replaces the image's CMD (arguments to its entrypoint). */
  command: z.array(z.string().max(4096)).max(256).optional(),
  /** Appended after `command` (or form the CMD alone when `command` is absent). */
  args: z.array(z.string().max(4096)).max(256).optional(),
  transport: Transport.default("stdio"),
  environment: Environment.prefault({}),
  volumes: z.array(VolumeMount).max(32).default([]),
  ports: z.array(PortMapping).max(16).default([]),
  resources: ResourceRequest.default({}),
  health_check: HealthCheck.optional(),
  user_configurable: z.boolean().default(false),
  required_secrets: z.array(SecretName).max(64).default([]),
  /**
   * Stop the container after this many seconds without client requests through the gateway; the first request
   * wakes it. 0 or absent: always on. Outside the spec hash (changing it replaces nothing).
   */
  idle_timeout_seconds: IdleTimeoutSeconds.optional(),
  /** Keeps the server always on unless policy.json's idle maximum says otherwise (Docker's `longLived`). */
  long_lived: z.boolean().optional(),
  /** Network egress (README, "Network egress"); absent: unrestricted. policy.json may only narrow it. */
  egress: Egress.optional(),
};

export const ServerDefinition = z.strictObject(serverFields).superRefine((server, ctx) => {
  if (server.transport !== "stdio" && server.ports.length === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["ports"],
      message: `a ${server.transport} server must declare the container port it listens on`,
    });
  }
  const secrets = new Set<string>();
  server.required_secrets.forEach((name, i) => {
    if (secrets.has(name))
      ctx.addIssue({ code: "custom", path: ["required_secrets", i], message: `duplicate secret ${name}` });
    secrets.add(name);
  });
});
export type ServerDefinition = z.infer<typeof ServerDefinition>;

/** Overlay entries carry the id and only the fields they change, or `disabled: true` to withdraw a server. */
export const OverlayServer = z.strictObject({
  id: ServerId,
  disabled: z.boolean().optional(),
  name: serverFields.name.optional(),
  display_name: serverFields.display_name,
  description: serverFields.description,
  category: serverFields.category,
  image: ImageName.optional(),
  tag: ImageTag.optional(),
  command: serverFields.command,
  args: serverFields.args,
  transport: Transport.optional(),
  environment: Environment.optional(),
  volumes: z.array(VolumeMount).max(32).optional(),
  ports: z.array(PortMapping).max(16).optional(),
  resources: ResourceRequest.optional(),
  health_check: HealthCheck.optional(),
  user_configurable: z.boolean().optional(),
  required_secrets: z.array(SecretName).max(64).optional(),
  idle_timeout_seconds: IdleTimeoutSeconds.optional(),
  long_lived: z.boolean().optional(),
  egress: Egress.optional(),
});
export type OverlayServer = z.infer<typeof OverlayServer>;

export const CatalogMetadata = z.strictObject({
  name: z.string().min(1).max(256),
  description: z.string().max(4096).optional(),
  maintainer: z.string().max(256).optional(),
  checksum: z.string().max(256).optional(),
});

const catalogFields = {
  $schema: SchemaRef,
  version: z.string().min(1).max(64),
  metadata: CatalogMetadata,
  user_id: z.string().optional(),
  created_at: z.iso.datetime({ offset: true }).optional(),
  updated_at: z.iso.datetime({ offset: true }).optional(),
};

function uniqueIds(servers: readonly { id: string }[], ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  servers.forEach((server, i) => {
    const first = seen.get(server.id);
    if (first !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["servers", i, "id"],
        message: `duplicate server id "${server.id}" (first at $.servers[${first}])`,
      });
    } else {
      seen.set(server.id, i);
    }
  });
}

export const BaseCatalogFile = z
  .strictObject({
    ...catalogFields,
    source: z.literal("base"),
    servers: z.array(ServerDefinition).max(10_000),
  })
  .superRefine((c, ctx) => uniqueIds(c.servers, ctx));
export type BaseCatalogFile = z.infer<typeof BaseCatalogFile>;

export const OverlayCatalogFile = z
  .strictObject({
    ...catalogFields,
    source: z.literal("overlay"),
    servers: z.array(OverlayServer).max(10_000),
  })
  .superRefine((c, ctx) => uniqueIds(c.servers, ctx));
export type OverlayCatalogFile = z.infer<typeof OverlayCatalogFile>;

export const UserCatalogFile = z
  .strictObject({
    ...catalogFields,
    source: z.literal("user"),
    servers: z.array(ServerDefinition).max(1_000),
  })
  .superRefine((c, ctx) => uniqueIds(c.servers, ctx));
export type UserCatalogFile = z.infer<typeof UserCatalogFile>;

/** Any catalog file; `source` decides which shape applies. Used for JSON Schema export. */
export const CatalogFile = z.discriminatedUnion("source", [
  BaseCatalogFile,
  OverlayCatalogFile,
  UserCatalogFile,
]);
export type CatalogFile = z.infer<typeof CatalogFile>;
