import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { inspect } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { SecretKeyError } from "../../../src/secrets/errors.js";
import {
  generateKey,
  KeyRing,
  loadKeyRing,
  parseKeyFile,
  parseKeyList,
} from "../../../src/secrets/key-ring.js";

function keyErrorOf(fn: () => unknown): SecretKeyError {
  try {
    fn();
  } catch (error) {
    if (error instanceof SecretKeyError) return error;
    throw error;
  }
  throw new Error("expected a SecretKeyError");
}

describe("key ring", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("parses a comma-separated list, primary first", () => {
    const ring = parseKeyList(`${generateKey("new")}, ${generateKey("old")},`);
    expect(ring.primaryKeyId).toBe("new");
    expect(ring.keyIds).toEqual(["new", "old"]);
    expect(ring.has("old")).toBe(true);
  });

  it("rejects missing, malformed, short, bad-id and duplicate keys with codes and without echoing material", () => {
    const material = randomBytes(32).toString("base64");
    const short = randomBytes(16).toString("base64");
    const cases: [string, string][] = [
      [" , ", "SECRET_KEYS_MISSING"],
      [material, "SECRET_KEY_MALFORMED"],
      [`k1:${material.slice(0, -1)}!`, "SECRET_KEY_MALFORMED"],
      [`k1:${short}`, "SECRET_KEY_INVALID_LENGTH"],
      [`bad.id:${material}`, "SECRET_KEY_INVALID_ID"],
      [`k1:${material},k1:${material}`, "SECRET_KEY_DUPLICATE_ID"],
    ];
    for (const [text, code] of cases) {
      const error = keyErrorOf(() => parseKeyList(text));
      expect(error.code).toBe(code);
      expect(error.message).not.toContain(material);
      expect(error.message).not.toContain(short);
      expect(error.message).not.toContain(material.slice(0, 12));
    }
  });

  it("names the offending item", () => {
    const error = keyErrorOf(() => parseKeyList(`${generateKey("a")},${generateKey("b").slice(0, 20)}`));
    expect(error.message).toContain("MCP_PORTAL_SECRET_KEYS item 2");
  });

  it("parses a key file with comments and blank lines", () => {
    const ring = parseKeyFile(`# keys\n\n${generateKey("k2")}\n${generateKey("k1")}\n`, "keys.txt");
    expect(ring.keyIds).toEqual(["k2", "k1"]);
    const error = keyErrorOf(() => parseKeyFile(`${generateKey("k2")}\nnonsense\n`, "keys.txt"));
    expect(error.message).toContain("keys.txt line 2");
  });

  it("loads from env or file, and refuses none or both", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mcp-portal-keys-"));
    dirs.push(dir);
    const file = path.join(dir, "keys");
    await writeFile(file, `${generateKey("filekey")}\n`);
    expect((await loadKeyRing({ MCP_PORTAL_SECRET_KEYS: generateKey("envkey") })).primaryKeyId).toBe(
      "envkey",
    );
    expect((await loadKeyRing({ MCP_PORTAL_SECRET_KEYS_FILE: file })).primaryKeyId).toBe("filekey");
    await expect(loadKeyRing({})).rejects.toMatchObject({ code: "SECRET_KEYS_MISSING" });
    await expect(
      loadKeyRing({ MCP_PORTAL_SECRET_KEYS: generateKey("a"), MCP_PORTAL_SECRET_KEYS_FILE: file }),
    ).rejects.toMatchObject({ code: "SECRET_KEYS_AMBIGUOUS" });
    await expect(loadKeyRing({ MCP_PORTAL_SECRET_KEYS_FILE: path.join(dir, "nope") })).rejects.toMatchObject({
      code: "SECRET_KEYS_FILE_UNREADABLE",
    });
  });

  it("never exposes key material through JSON or inspect", () => {
    const line = generateKey("k1");
    const material = line.slice(3);
    const ring = parseKeyList(line);
    expect(JSON.stringify(ring)).not.toContain(material);
    expect(inspect(ring, { showHidden: true, depth: 5 })).not.toContain(material);
  });

  it("generateKey validates the id and makes 32-byte keys", () => {
    const [id, encoded = ""] = generateKey("prod-2025_01").split(":");
    expect(id).toBe("prod-2025_01");
    expect(Buffer.from(encoded, "base64")).toHaveLength(32);
    expect(() => generateKey("no:colons")).toThrow(SecretKeyError);
    expect(() => KeyRing.fromKeys([])).toThrow(SecretKeyError);
  });
});
