/**
 * Errors of the secrets module. Every one carries a machine-readable `code`; no message ever contains a secret
 * value or key material (only ids, names, file paths and line numbers).
 */

export type SecretKeyErrorCode =
  | "SECRET_KEYS_MISSING"
  | "SECRET_KEYS_AMBIGUOUS"
  | "SECRET_KEYS_FILE_UNREADABLE"
  | "SECRET_KEY_MALFORMED"
  | "SECRET_KEY_INVALID_ID"
  | "SECRET_KEY_INVALID_LENGTH"
  | "SECRET_KEY_DUPLICATE_ID"
  | "SECRET_DIGEST_KEY_INVALID";

/** A problem with the key ring configuration (or the digest key file sealed under it). */
export class SecretKeyError extends Error {
  override readonly name = "SecretKeyError";
  constructor(
    readonly code: SecretKeyErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type SecretDecryptErrorCode = "SECRET_UNKNOWN_KEY" | "SECRET_DECRYPT_FAILED";

/** A stored value that cannot be decrypted: unknown key id, wrong key, tampering, or moved to another user/name. */
export class SecretDecryptError extends Error {
  override readonly name = "SecretDecryptError";
  constructor(
    readonly code: SecretDecryptErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type SecretsFileErrorCode = "SECRETS_FILE_INVALID" | "SECRETS_FILE_UNREADABLE";

/**
 * A secrets.env that exists but cannot be read or parsed. Never treated as "no secrets".
 * `problems` are `<file>: line <n>: <reason>` lines; `message` joins them.
 */
export class SecretsFileError extends Error {
  override readonly name = "SecretsFileError";
  constructor(
    readonly code: SecretsFileErrorCode,
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(problems.join("\n"));
  }
}

export type SecretUsageErrorCode = "SECRET_INVALID_USER_ID" | "SECRET_INVALID_NAME" | "SECRET_INVALID_VALUE";

/** A caller passed an argument the store refuses (bad user id, secret name or value). */
export class SecretUsageError extends Error {
  override readonly name = "SecretUsageError";
  constructor(
    readonly code: SecretUsageErrorCode,
    message: string,
  ) {
    super(message);
  }
}
