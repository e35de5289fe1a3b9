// A real three-node Docker Swarm for the swarm tests and bench:swarm, made by scripts/swarm-lab.sh with names and
// a subnet of its own per run (two runs on one machine never meet), and torn down by the same script.
import { execFile } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, "../..");
const SCRIPT = path.join(REPO, "scripts/swarm-lab.sh");
/** Starting three dockerds and loading the test images onto each: well under this on the CI machine. */
export const LAB_UP_TIMEOUT_MS = 240_000;

export interface LabNode {
  index: number;
  /** The node's hostname (what Swarm and status call it). */
  name: string;
  /** Its address on the lab bridge: the host reaches it. */
  addr: string;
  /** Its engine's socket (unix path). */
  sock: string;
  /** Its network namespace (for nsenter --net). */
  netns: string;
  docker: Docker;
}

export interface SwarmLab {
  id: string;
  nodes: LabNode[];
  /** DOCKER_HOST of the manager (node 1). */
  managerHost: string;
  killNode(index: number): Promise<void>;
  startNode(index: number): Promise<void>;
  down(): Promise<void>;
}

/**
 * Whether this run starts the lab (it needs root: network namespaces and dockerds). On CI (.ci/run sets
 * MCP_PORTAL_SWARM_LAB=required; CI=true does the same) the swarm tests always run, so a lab that cannot start is
 * a failure, never a skip. Elsewhere they run as root unless MCP_PORTAL_SWARM_LAB=off.
 */
export function swarmLabWanted(): boolean {
  if (process.env.MCP_PORTAL_SWARM_LAB === "required" || process.env.CI === "true") return true;
  if (process.env.MCP_PORTAL_SWARM_LAB === "off") return false;
  return process.getuid?.() === 0;
}

async function script(env: Record<string, string>, ...args: string[]): Promise<string> {
  const { stdout } = await run("bash", [SCRIPT, ...args], {
    env: { ...process.env, ...env },
    timeout: LAB_UP_TIMEOUT_MS,
    maxBuffer: 4 * 1024 * 1024,
  });
  return stdout;
}

/** A /24 under 10.251.0.0/16 that no route of this machine touches yet. */
async function freeLabNet(): Promise<string> {
  const { stdout } = await run("ip", ["-4", "route", "show"]);
  for (let attempt = 0; attempt < 50; attempt++) {
    const net = `10.251.${randomInt(0, 256)}`;
    if (!stdout.includes(`${net}.`)) return net;
  }
  throw new Error("no free /24 under 10.251.0.0/16 for the swarm lab");
}

export async function startSwarmLab(options: { images?: string[] } = {}): Promise<SwarmLab> {
  const env: Record<string, string> = {
    LAB_ID: `mcpsw${randomBytes(3).toString("hex")}`,
    LAB_NET: await freeLabNet(),
    LAB_NODES: "3",
    ...(options.images ? { LAB_IMAGES: options.images.join(" ") } : {}),
  };
  const down = async () => {
    await script(env, "down");
  };
  let facts: Record<string, string>;
  try {
    facts = Object.fromEntries(
      (await script(env, "up"))
        .split("\n")
        .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line.trim()))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1]!, m[2]!]),
    );
  } catch (error) {
    // `up` tears down what it made when it fails; once more in case it was killed by the timeout.
    await down().catch(() => undefined);
    throw error;
  }
  const nodes: LabNode[] = [1, 2, 3].map((index) => {
    const sock = facts[`LAB_NODE${index}_SOCK`]!;
    return {
      index,
      name: facts[`LAB_NODE${index}_NAME`]!,
      addr: facts[`LAB_NODE${index}_ADDR`]!,
      sock,
      netns: facts[`LAB_NODE${index}_NETNS`]!,
      docker: new Docker({ socketPath: sock }),
    };
  });
  return {
    id: env.LAB_ID!,
    nodes,
    managerHost: facts.LAB_MANAGER!,
    killNode: async (index) => {
      await script(env, "kill-node", String(index));
    },
    startNode: async (index) => {
      await script(env, "start-node", String(index));
    },
    down,
  };
}
