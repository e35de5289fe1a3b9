import { readFile } from "node:fs/promises";

export const ADMIN_TOKEN_ENV = "MCP_PORTAL_ADMIN_TOKEN";
export const ADMIN_TOKEN_FILE_ENV = "MCP_PORTAL_ADMIN_TOKEN_FILE";
export const MIN_ADMIN_TOKEN_LENGTH = 16;

export class AdminTokenError extends Error {
  readonly code = "ADMIN_TOKEN_INVALID";
  override readonly name = "AdminTokenError";
}

/**
 * The admin token from MCP_PORTAL_ADMIN_TOKEN or the file named by MCP_PORTAL_ADMIN_TOKEN_FILE (trimmed), or
 * undefined when neither is set. Both set, an unreadable file or a token shorter than 16 characters throw.
 */
export async function loadAdminToken(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const inline = env[ADMIN_TOKEN_ENV]?.trim() ?? "";
  const file = env[ADMIN_TOKEN_FILE_ENV]?.trim() ?? "";
  if (inline !== "" && file !== "") {
    throw new AdminTokenError(`set ${ADMIN_TOKEN_ENV} or ${ADMIN_TOKEN_FILE_ENV}, not both`);
  }
  let token = inline;
  if (file !== "") {
    try {
      token = (await readFile(file, "utf8")).trim();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "error";
      throw new AdminTokenError(`${ADMIN_TOKEN_FILE_ENV}: cannot read ${file} (${code})`);
    }
    if (token === "") throw new AdminTokenError(`${ADMIN_TOKEN_FILE_ENV}: ${file} is empty`);
  }
  if (token === "") return undefined;
  if (token.length < MIN_ADMIN_TOKEN_LENGTH) {
    throw new AdminTokenError(
      `the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32)`,
    );
  }
  if (/\s/.test(token)) throw new AdminTokenError("the admin token must not contain whitespace");
  return token;
}
