import { z } from "zod";
import type { RuntimeEvent } from "./runtime.js";

const EngineEvent = z.object({
  Type: z.string(),
  Action: z.string(),
  Actor: z.object({ ID: z.string(), Attributes: z.record(z.string(), z.string()).optional() }),
});

/** An engine event of any type (Swarm's `service` and `node` events included), before it is narrowed. */
export interface RawEngineEvent {
  type: string;
  action: string;
  id: string;
  attributes: Readonly<Record<string, string>>;
}

/** The container, network and volume events of a stream (what the engine backend follows). */
export async function* parseEventStream(
  stream: NodeJS.ReadableStream,
  signal: AbortSignal,
): AsyncIterable<RuntimeEvent> {
  for await (const raw of parseRawEventStream(stream, signal)) {
    if (raw.type !== "container" && raw.type !== "network" && raw.type !== "volume") continue;
    yield { type: raw.type, action: raw.action, id: raw.id, labels: raw.attributes };
  }
}

/** Splits the engine's event stream by line before parsing (a chunk may hold half an event or several). */
export async function* parseRawEventStream(
  stream: NodeJS.ReadableStream,
  signal: AbortSignal,
): AsyncIterable<RawEngineEvent> {
  let buffer = "";
  const onAbort = () => {
    (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const chunk of stream) {
      buffer += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        const event = parseLine(line);
        if (event) yield event;
      }
    }
    const event = parseLine(buffer.trim());
    if (event) yield event;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function parseLine(line: string): RawEngineEvent | undefined {
  if (!line) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  const parsed = EngineEvent.safeParse(raw);
  if (!parsed.success) return undefined;
  const { Type, Action, Actor } = parsed.data;
  // Exec events arrive as "exec_start: sh -c ..."; the verb is what matters.
  const action = Action.split(":")[0] ?? Action;
  return { type: Type, action, id: Actor.ID, attributes: Actor.Attributes ?? {} };
}
