import { z } from "zod";

/** User ids as the original design defines them; no dots, so never a path segment like `..`. */
export const USER_ID_PATTERN = /^[a-zA-Z0-9-]{1,32}$/;
/**
 * `__proto__` is refused: as a JSON object key it would set a prototype (and zod drops it without a word), so a
 * policy.json entry for it could never apply. `constructor` and `prototype` stay valid server ids: every lookup
 * by id is an own-property lookup.
 */
export const SERVER_ID_PATTERN = /^(?!__proto__$)[a-zA-Z0-9_-]{1,32}$/;
/** POSIX-portable environment variable names, minus the names that mean something to JavaScript objects. */
export const ENV_NAME_PATTERN = /^(?!(?:__proto__|constructor|prototype)$)[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Names no map key taken from a file may have: they would reach or shadow Object.prototype. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);
/** Secret names are upper-case env names so they can be injected as-is. */
export const SECRET_NAME_PATTERN = /^[A-Z_][A-Z0-9_]{0,127}$/;

export const UserId = z.string().regex(USER_ID_PATTERN, "user id must match ^[a-zA-Z0-9-]{1,32}$");
export const ServerId = z
  .string()
  .refine((id) => id !== "__proto__", { message: "__proto__ is a reserved name", abort: true })
  .regex(SERVER_ID_PATTERN, "server id must match ^[a-zA-Z0-9_-]{1,32}$");
export const EnvName = z
  .string()
  .refine((name) => !RESERVED_KEYS.has(name), {
    message: "__proto__, constructor and prototype are reserved names",
    abort: true,
  })
  .regex(ENV_NAME_PATTERN, "not a valid environment variable name");
export const SecretName = z.string().regex(SECRET_NAME_PATTERN, "secret name must match ^[A-Z_][A-Z0-9_]*$");

export function isValidUserId(value: string): boolean {
  return USER_ID_PATTERN.test(value);
}

export function isValidServerId(value: string): boolean {
  return SERVER_ID_PATTERN.test(value);
}
