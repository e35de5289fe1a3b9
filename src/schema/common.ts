import { z } from "zod";
import { EnvName } from "../util/ids.js";

/** Image names without tag or digest: `[registry[:port]/]path`, lower-case components as Docker requires. */
const IMAGE_NAME_PATTERN =
  /^(?:(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]{1,5})?)\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export const ImageName = z
  .string()
  .max(255)
  .regex(IMAGE_NAME_PATTERN, "not a valid image name (put the tag in `tag`, not in `image`)");
export const ImageTag = z.string().regex(TAG_PATTERN, "not a valid image tag");

/**
 * A JSON object used as a map from `key` to `value`. zod leaves a `__proto__` key out without a word (assigning it
 * would set the result's prototype); refusing it instead tells the file's author that the entry cannot apply.
 */
export function jsonMap<K extends z.ZodType<string, string>, V extends z.ZodType>(key: K, value: V) {
  const record = z.record(key, value);
  return z.preprocess<unknown, typeof record, z.input<typeof record>>((input, ctx) => {
    if (typeof input === "object" && input !== null && Object.hasOwn(input, "__proto__")) {
      ctx.addIssue({ code: "custom", path: ["__proto__"], message: "__proto__ is a reserved name" });
    }
    return input;
  }, record);
}

export const Environment = jsonMap(EnvName, z.string().max(32_768));

export const VolumeMount = z.strictObject({
  host_path: z.string().min(1).max(512),
  container_path: z
    .string()
    .max(512)
    .regex(/^\//, "container_path must be absolute")
    .refine((p) => !p.split("/").includes(".."), "container_path must not contain '..'"),
  mode: z.enum(["ro", "rw"]).default("rw"),
});
export type VolumeMount = z.infer<typeof VolumeMount>;

export const PortMapping = z.strictObject({
  container_port: z.number().int().min(1).max(65_535),
  protocol: z.enum(["tcp", "udp"]).default("tcp"),
});
export type PortMapping = z.infer<typeof PortMapping>;

export const ResourceRequest = z.strictObject({
  memory_mb: z.number().int().min(6).max(65_536).optional(),
  cpu_shares: z.number().int().min(2).max(262_144).optional(),
  pids_limit: z.number().int().min(1).max(32_768).optional(),
});
export type ResourceRequest = z.infer<typeof ResourceRequest>;

export const HealthCheck = z.strictObject({
  interval_seconds: z.number().int().min(1).max(3600).optional(),
  timeout_seconds: z.number().int().min(1).max(600).optional(),
  retries: z.number().int().min(0).max(100).optional(),
  start_period_seconds: z.number().int().min(0).max(3600).optional(),
});
export type HealthCheck = z.infer<typeof HealthCheck>;

/** Lets editors validate files against manifests/schemas/*.json; ignored by the controller. */
export const SchemaRef = z.string().max(1024).optional();
