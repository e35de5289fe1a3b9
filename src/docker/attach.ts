import { PassThrough, type Duplex, type Readable, type Writable } from "node:stream";
import type Docker from "dockerode";
import { toRuntimeError } from "./dockerode-runtime.js";

/*
 * What the gateway needs from the engine beyond the controller's runtime: a container's stdin/stdout (attach)
 * and where an HTTP server listens (inspect). Narrow interface, one dockerode implementation.
 */

export interface AttachedStdio {
  /** The container's stdin (the hijacked connection: write whole messages, never end it). */
  stdin: Writable;
  /** The container's stdout, demultiplexed. */
  stdout: Readable;
  /** The container's stderr, demultiplexed. */
  stderr: Readable;
  /** Resolves with a reason once the attach has ended (container stopped, engine gone, or close()). */
  closed: Promise<string>;
  close(): void;
}

export interface ContainerEndpoint {
  running: boolean;
  /** The IPv4 address on the container's own network (its NetworkMode), else on its first network with one. */
  ipAddress: string | undefined;
  /** TCP ports the container exposes, ascending. */
  exposedTcpPorts: number[];
  /** MCP_SERVER_PORT from the container's environment (the controller sets it); no other variable is read. */
  serverPortEnv: number | undefined;
  labels: Readonly<Record<string, string>>;
}

export interface ContainerAttacher {
  /** Attaches to stdin, stdout and stderr of a container started with OpenStdin (stream only, no old logs). */
  attachStdio(containerId: string): Promise<AttachedStdio>;
  inspectEndpoint(containerId: string): Promise<ContainerEndpoint>;
}

/** Stream ids in the engine's multiplexed attach stream (Tty false): an 8-byte header before each frame. */
export const STREAM_STDIN = 0;
export const STREAM_STDOUT = 1;
export const STREAM_STDERR = 2;

/**
 * Splits the engine's multiplexed stream: header `[stream, 0, 0, 0, size (uint32 big-endian)]`, then `size`
 * bytes. A chunk may hold part of a header, several frames, or part of a frame.
 */
export class FrameDemuxer {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 8) {
      const size = this.buffer.readUInt32BE(4);
      if (this.buffer.length < 8 + size) break;
      const stream = this.buffer[0] ?? STREAM_STDOUT;
      const payload = this.buffer.subarray(8, 8 + size);
      this.buffer = this.buffer.subarray(8 + size);
      if (size > 0) this.onFrame(stream, payload);
    }
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get pendingBytes(): number {
    return this.buffer.length;
  }
}

export interface DockerodeAttacherOptions {
  /** Bound of the attach handshake and of each inspect. */
  timeoutMs: number;
}

export class DockerodeAttacher implements ContainerAttacher {
  constructor(
    private readonly docker: Docker,
    private readonly options: DockerodeAttacherOptions,
  ) {}

  async attachStdio(containerId: string): Promise<AttachedStdio> {
    // Our own controller: the signal bounds the handshake only; the hijacked socket outlives it.
    const handshake = new AbortController();
    const timer = setTimeout(() => handshake.abort(), this.options.timeoutMs);
    let socket: Duplex;
    try {
      socket = (await this.docker.getContainer(containerId).attach({
        stream: true,
        stdin: true,
        stdout: true,
        stderr: true,
        hijack: true,
        abortSignal: handshake.signal,
      })) as unknown as Duplex;
    } catch (error) {
      throw toRuntimeError("attach container", error);
    } finally {
      clearTimeout(timer);
    }
    return demultiplexed(socket);
  }

  async inspectEndpoint(containerId: string): Promise<ContainerEndpoint> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker
        .getContainer(containerId)
        .inspect({ abortSignal: AbortSignal.timeout(this.options.timeoutMs) } as object);
    } catch (error) {
      throw toRuntimeError("inspect container", error);
    }
    const networks = info.NetworkSettings?.Networks ?? {};
    const own = networks[info.HostConfig?.NetworkMode ?? ""]?.IPAddress;
    const any = Object.values(networks)
      .map((n) => n.IPAddress)
      .find((ip) => typeof ip === "string" && ip !== "");
    const exposed = Object.keys(info.Config?.ExposedPorts ?? {})
      .filter((key) => key.endsWith("/tcp"))
      .map((key) => Number(key.split("/")[0]))
      .filter((port) => Number.isInteger(port) && port > 0)
      .sort((a, b) => a - b);
    const envPort = (info.Config?.Env ?? []).find((entry) => entry.startsWith("MCP_SERVER_PORT="));
    const serverPort = envPort === undefined ? NaN : Number(envPort.slice("MCP_SERVER_PORT=".length));
    return {
      running: info.State?.Running === true,
      ipAddress: own !== undefined && own !== "" ? own : any,
      exposedTcpPorts: exposed,
      serverPortEnv: Number.isInteger(serverPort) && serverPort > 0 ? serverPort : undefined,
      labels: info.Config?.Labels ?? {},
    };
  }
}

/** Wraps a hijacked attach connection: stdin is the socket itself; its output is split into stdout and stderr. */
export function demultiplexed(socket: Duplex): AttachedStdio {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const demuxer = new FrameDemuxer((stream, payload) => {
    if (stream === STREAM_STDERR) stderr.write(payload);
    else stdout.write(payload);
  });
  let resolveClosed: (reason: string) => void = () => undefined;
  const closed = new Promise<string>((resolve) => {
    resolveClosed = resolve;
  });
  let ended = false;
  const finish = (reason: string) => {
    if (ended) return;
    ended = true;
    stdout.end();
    stderr.end();
    resolveClosed(reason);
  };
  socket.on("data", (chunk: Buffer) => demuxer.push(chunk));
  socket.on("end", () => finish("the container's output ended"));
  socket.on("close", () => finish("attach connection closed"));
  socket.on("error", (error: Error) => finish(`attach connection failed: ${error.message}`));
  return {
    stdin: socket,
    stdout,
    stderr,
    closed,
    close: () => {
      socket.destroy();
      finish("closed by the gateway");
    },
  };
}
