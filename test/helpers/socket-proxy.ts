// A unix-socket proxy in front of the Docker socket that a test can cut and restore, to make the engine
// "unreachable" for one daemon without touching the engine every other test shares.
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export class DockerSocketProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly socketPath: string,
    private readonly target: string,
  ) {}

  static async start(target = "/var/run/docker.sock"): Promise<DockerSocketProxy> {
    const dir = await mkdtemp(path.join(tmpdir(), "mcp-portal-proxy-"));
    const proxy = new DockerSocketProxy(path.join(dir, "docker.sock"), target);
    await proxy.up();
    return proxy;
  }

  get dockerHost(): string {
    return `unix://${this.socketPath}`;
  }

  async up(): Promise<void> {
    if (this.server) return;
    await rm(this.socketPath, { force: true });
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      this.sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.socketPath, resolve));
    this.server = server;
  }

  /** Refuses new connections and cuts the open ones (the event stream included). */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(this.socketPath, { force: true });
  }

  async dispose(): Promise<void> {
    await this.down();
    await rm(path.dirname(this.socketPath), { recursive: true, force: true });
  }
}
