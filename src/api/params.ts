import { z } from "zod";
import { SecretName, ServerId, UserId } from "../util/ids.js";

/** Base catalog file names: `catalogs/base/<name>.json`. */
export const CATALOG_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

export const CatalogName = z
  .string()
  .regex(CATALOG_NAME_PATTERN, "catalog name must match ^[a-zA-Z0-9_-]{1,64}$");

export const UserParams = z.strictObject({ user_id: UserId });
export const UserServerParams = z.strictObject({ user_id: UserId, server_id: ServerId });
export const UserSecretParams = z.strictObject({ user_id: UserId, name: SecretName });
export const CatalogParams = z.strictObject({ catalog_id: CatalogName });

/** Query booleans: `true|false|1|0`. */
export const QueryBoolean = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
