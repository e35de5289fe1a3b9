import { open } from "node:fs/promises";
import type { z } from "zod";

/** A file of the state dir read through its contract: missing, unusable (and why), or its content. */
export type StateFileRead<T> =
  | { status: "missing" }
  | { status: "invalid"; reason: string }
  | { status: "ok"; value: T; mtimeMs: number; size: number };

/**
 * Reads a JSON file one of our processes wrote into the state dir: a regular file of at most `maxBytes` (checked
 * on the open descriptor, so nothing larger is ever read), parsed and validated by `schema`.
 */
export async function readStateFile<S extends z.ZodType>(
  file: string,
  schema: S,
  maxBytes: number,
): Promise<StateFileRead<z.output<S>>> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { status: "missing" };
    return { status: "invalid", reason: `cannot open: ${(error as NodeJS.ErrnoException).code ?? "error"}` };
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { status: "invalid", reason: "not a regular file" };
    if (info.size > maxBytes) return { status: "invalid", reason: `over ${maxBytes} bytes` };
    const buffer = Buffer.alloc(info.size);
    const { bytesRead } = await handle.read(buffer, 0, info.size, 0);
    let raw: unknown;
    try {
      raw = JSON.parse(buffer.subarray(0, bytesRead).toString("utf8"));
    } catch {
      return { status: "invalid", reason: "not JSON" };
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return {
        status: "invalid",
        reason: `$.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`,
      };
    }
    return { status: "ok", value: parsed.data, mtimeMs: info.mtimeMs, size: info.size };
  } catch (error) {
    return { status: "invalid", reason: `cannot read: ${(error as NodeJS.ErrnoException).code ?? "error"}` };
  } finally {
    await handle.close();
  }
}
