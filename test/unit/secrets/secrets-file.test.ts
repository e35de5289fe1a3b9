import { describe, expect, it } from "vitest";
import { encryptSecret } from "../../../src/secrets/cipher.js";
import { formatEnvelope } from "../../../src/secrets/envelope.js";
import { generateKey, parseKeyList } from "../../../src/secrets/key-ring.js";
import { parseSecretsFile, serializeSecretsFile } from "../../../src/secrets/secrets-file.js";

const ring = parseKeyList(generateKey("k1"));
const line = (name: string) => `${name}=${formatEnvelope(encryptSecret(ring, "alice", name, "v"))}`;

describe("secrets.env format", () => {
  it("round-trips and tolerates blank lines, comments, CRLF and spaces", () => {
    const text = `# comment\n\n  ${line("A")}  \r\n${line("B")}\n`;
    const parsed = parseSecretsFile(text);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.entries.map((entry) => entry.name)).toEqual(["A", "B"]);
    expect(parseSecretsFile(serializeSecretsFile(parsed.entries))).toEqual(parsed);
  });

  it("reports every bad line by number without quoting values", () => {
    const text = [
      line("GOOD"),
      "NO_EQUALS_SIGN",
      "lower=enc:v1:k1:AAAA",
      "PLAIN=hunter2",
      "V2=enc:v2:k1:AAAA",
      "BADKEY=enc:v1:bad.key:AAAA",
      "BADB64=enc:v1:k1:@@@@",
      "SHORT=enc:v1:k1:AAAA",
      line("GOOD"),
    ].join("\n");
    const parsed = parseSecretsFile(text);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.problems.map((problem) => problem.split(":")[0])).toEqual([
      "line 2",
      "line 3",
      "line 4",
      "line 5",
      "line 6",
      "line 7",
      "line 8",
      "line 9",
    ]);
    expect(parsed.problems[2]).toContain("not encrypted");
    expect(parsed.problems[7]).toContain("duplicate secret GOOD (first on line 1)");
    expect(parsed.problems.join("\n")).not.toContain("hunter2");
  });
});
