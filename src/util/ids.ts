import { z } from "zod";

/** User ids as the original design defines them; no dots, so never a path segment like `..`. */
export const USER_ID_PATTERN = /^[a-zA-Z0-9-]{1,32}$/;
export const SERVER_ID_PATTERN = /^[a-zA-Z0-9_-]{1,32}$/;
/** POSIX-portable environment variable names. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Secret names are upper-case env names so they can be injected as-is. */
export const SECRET_NAME_PATTERN = /^[A-Z_][A-Z0-9_]{0,127}$/;

export const UserId = z.string().regex(USER_ID_PATTERN, "user id must match ^[a-zA-Z0-9-]{1,32}$");
export const ServerId = z.string().regex(SERVER_ID_PATTERN, "server id must match ^[a-zA-Z0-9_-]{1,32}$");
export const EnvName = z.string().regex(ENV_NAME_PATTERN, "not a valid environment variable name");
export const SecretName = z.string().regex(SECRET_NAME_PATTERN, "secret name must match ^[A-Z_][A-Z0-9_]*$");

export function isValidUserId(value: string): boolean {
  return USER_ID_PATTERN.test(value);
}

export function isValidServerId(value: string): boolean {
  return SERVER_ID_PATTERN.test(value);
}
