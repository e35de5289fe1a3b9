import type { Readable } from "node:stream";
import type Docker from "dockerode";
import { toRuntimeError } from "../../docker/dockerode-runtime.js";
import { LABELS, ownerFilters } from "../../labels.js";
import { FrameDemuxer, TailBuffer } from "./log-tail.js";

/*
 * The console's read-only view of a user's containers: their engine state and the end of their logs. It sits in
 * the API layer, next to (not inside) the controller's ContainerRuntime, and only reads: list, inspect, logs.
 * Every call is bounded in time; a log read is bounded in bytes however much the container wrote.
 */

export interface ContainerInfo {
  id: string;
  name: string;
  serverId: string;
  /** The engine's state: running, exited, created, restarting, ... */
  state: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode: number | null;
  oomKilled: boolean;
  /** The engine's error for the last start, if any. */
  error: string | null;
}

export interface LogRead {
  /**
   * The last bytes the container wrote, stdout and stderr interleaved. Without the engine's timestamps: the
   * engine splits lines over 16 KiB into parts and would put a timestamp inside the line between them, where it
   * could split a secret value and hide it from redaction.
   */
  bytes: Buffer;
  /** Older output was dropped to stay under the byte cap. */
  truncated: boolean;
}

export interface ContainerReader {
  /** The containers this installation runs for the user (usually one per server; two during a replace). */
  list(userId: string): Promise<ContainerInfo[]>;
  /** The last `lines` lines of a container's log, keeping at most `maxBytes` bytes of them. */
  logs(containerId: string, options: { lines: number; maxBytes: number }): Promise<LogRead>;
}

export class DockerContainerReader implements ContainerReader {
  constructor(
    private readonly docker: Docker,
    private readonly installation: string,
    private readonly timeoutMs: number,
  ) {}

  async list(userId: string): Promise<ContainerInfo[]> {
    const listed = await this.call("list containers", (abortSignal) =>
      this.docker.listContainers({
        all: true,
        filters: { label: ownerFilters(this.installation, userId) },
        abortSignal,
      }),
    );
    const infos = await Promise.all(
      listed.map(async (summary) => {
        try {
          const inspect = await this.call("inspect container", (abortSignal) =>
            this.docker.getContainer(summary.Id).inspect({ abortSignal }),
          );
          const state = inspect.State;
          return {
            id: inspect.Id,
            name: inspect.Name.replace(/^\//, ""),
            serverId: inspect.Config.Labels?.[LABELS.serverId] ?? "",
            state: state.Status,
            createdAt: inspect.Created,
            startedAt: engineTime(state.StartedAt),
            finishedAt: engineTime(state.FinishedAt),
            exitCode:
              state.Status === "running" || engineTime(state.FinishedAt) === null ? null : state.ExitCode,
            oomKilled: state.OOMKilled,
            error: state.Error === "" ? null : state.Error,
          } satisfies ContainerInfo;
        } catch (error) {
          // Removed between the list and the inspect (a replace): not an error, just gone.
          if (toRuntimeError("inspect container", error).code === "NotFound") return undefined;
          throw error;
        }
      }),
    );
    return infos.filter((info) => info !== undefined);
  }

  async logs(containerId: string, options: { lines: number; maxBytes: number }): Promise<LogRead> {
    const abortSignal = AbortSignal.timeout(this.timeoutMs);
    const stream = await this.call("read container logs", () =>
      this.openLogStream(containerId, options, abortSignal),
    );
    const demux = new FrameDemuxer();
    const tail = new TailBuffer(options.maxBytes);
    try {
      for await (const chunk of stream) {
        for (const payload of demux.push(chunk as Buffer)) tail.push(payload);
      }
    } catch (error) {
      throw toRuntimeError("read container logs", error);
    } finally {
      stream.destroy();
    }
    return { bytes: tail.bytes(), truncated: tail.truncated };
  }

  /** `container.logs` buffers the whole answer unless it follows; dial the same request as a stream instead. */
  private openLogStream(
    containerId: string,
    options: { lines: number },
    abortSignal: AbortSignal,
  ): Promise<Readable> {
    const modem = this.docker.getContainer(containerId).modem as {
      dial(options: Record<string, unknown>, callback: (error: unknown, stream: Readable) => void): void;
    };
    return new Promise((resolve, reject) => {
      modem.dial(
        {
          path: `/containers/${encodeURIComponent(containerId)}/logs?`,
          method: "GET",
          abortSignal,
          isStream: true,
          statusCodes: { 200: true, 404: "no such container", 500: "server error" },
          options: { stdout: true, stderr: true, follow: false, timestamps: false, tail: options.lines },
        },
        (error, stream) => (error ? reject(toRuntimeError("read container logs", error)) : resolve(stream)),
      );
    });
  }

  private async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await fn(AbortSignal.timeout(this.timeoutMs));
    } catch (error) {
      throw toRuntimeError(what, error);
    }
  }
}

/** The engine writes "0001-01-01T00:00:00Z" for "never". */
function engineTime(value: string | undefined): string | null {
  if (value === undefined || value === "" || value.startsWith("0001-")) return null;
  return value;
}
