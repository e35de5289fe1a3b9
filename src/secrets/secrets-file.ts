import { SECRET_NAME_PATTERN } from "../util/ids.js";
import { formatEnvelope, parseEnvelope, type Envelope } from "./envelope.js";

/** One line of users/<id>/secrets.env. */
export interface SecretEntry extends Envelope {
  name: string;
}

export type ParseResult = { ok: true; entries: SecretEntry[] } | { ok: false; problems: string[] };

const HEADER =
  "# Encrypted by mcp-portal (AES-256-GCM); one NAME=enc:v1:<key-id>:<base64> per line.\n" +
  "# Manage with: mcp-portal secrets set|rm|list|rotate\n";

/**
 * Parses secrets.env text. Blank lines and `#` comments are skipped; every other line must be
 * `NAME=enc:v1:<key-id>:<base64>`. Problems read `line <n>: <reason>` and never quote a value.
 */
export function parseSecretsFile(text: string): ParseResult {
  const entries: SecretEntry[] = [];
  const problems: string[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    if (eq < 0) {
      problems.push(`line ${lineNo}: expected NAME=enc:v1:<key-id>:<base64>`);
      return;
    }
    const name = line.slice(0, eq).trim();
    if (!SECRET_NAME_PATTERN.test(name)) {
      problems.push(`line ${lineNo}: secret name must match ${SECRET_NAME_PATTERN.source}`);
      return;
    }
    const parsed = parseEnvelope(line.slice(eq + 1).trim());
    if (!parsed.ok) {
      problems.push(`line ${lineNo}: ${name}: ${parsed.reason}`);
      return;
    }
    const first = seen.get(name);
    if (first !== undefined) {
      problems.push(`line ${lineNo}: duplicate secret ${name} (first on line ${first})`);
      return;
    }
    seen.set(name, lineNo);
    entries.push({ name, ...parsed.envelope });
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, entries };
}

export function serializeSecretsFile(entries: readonly SecretEntry[]): string {
  return HEADER + entries.map((entry) => `${entry.name}=${formatEnvelope(entry)}\n`).join("");
}
