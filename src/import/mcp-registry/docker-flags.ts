import { ENV_NAME_PATTERN } from "../../util/ids.js";
import type { ServerReport } from "../report.js";
import { resolveInput } from "./inputs.js";
import type { Argument } from "./schema.js";

/*
 * An OCI package's runtimeArguments are `docker run` flags. The controller builds every container itself
 * (hardened, on the user's network, nothing published), so no flag is passed through: `-e/--env NAME=value`
 * becomes environment, flags the controller already owns are ignored, flags that would weaken isolation are
 * refused, and anything else is dropped. Every one of them is reported.
 */

/** Flags that would loosen isolation or reach the host: only an admin may loosen a server (policy.json). */
const REFUSED = new Set([
  "--privileged",
  "--cap-add",
  "--security-opt",
  "--user",
  "-u",
  "--network",
  "--net",
  "--network-alias",
  "--pid",
  "--ipc",
  "--uts",
  "--userns",
  "--cgroupns",
  "--cgroup-parent",
  "--device",
  "--device-cgroup-rule",
  "--gpus",
  "--volume",
  "-v",
  "--mount",
  "--volumes-from",
  "--publish",
  "-p",
  "--publish-all",
  "-P",
  "--sysctl",
  "--group-add",
  "--runtime",
  "--oom-kill-disable",
  "--add-host",
  "--dns",
  "--env-file",
]);

/** Flags whose job the controller does itself (stdin for the gateway, removal, naming, restarts). */
const MANAGED = new Set([
  "-i",
  "--interactive",
  "-t",
  "--tty",
  "--rm",
  "--init",
  "-d",
  "--detach",
  "--name",
  "--restart",
]);

const ENV_FLAGS = new Set(["-e", "--env"]);

export interface DockerFlagsMapping {
  environment: Record<string, string>;
  /** Some `-e` value needs user input: users set it in config.environment. */
  userConfigurable: boolean;
}

export function mapDockerFlags(
  args: readonly Argument[] | undefined,
  report: ServerReport,
): DockerFlagsMapping {
  const out: DockerFlagsMapping = { environment: {}, userConfigurable: false };
  for (const [i, arg] of (args ?? []).entries()) {
    const field = `runtimeArguments[${i}] ${arg.type === "named" ? arg.name : (arg.value ?? arg.valueHint ?? "")}`;
    const drop = (reason: string) => report.dropped.push({ field, reason });
    if (arg.type === "positional") {
      drop("a positional docker argument; the controller builds the container itself");
      continue;
    }
    const flag = arg.name.split("=")[0]!;
    if (REFUSED.has(flag)) {
      drop(
        "refused: it would loosen the container's isolation or reach the host (policy.json server_security is where an admin loosens a server)",
      );
      continue;
    }
    if (MANAGED.has(flag)) {
      report.notes.push(`${field}: not needed, the controller handles it`);
      continue;
    }
    if (!ENV_FLAGS.has(flag)) {
      drop("docker flag not supported; the controller builds the container itself");
      continue;
    }
    const resolved = resolveInput(arg);
    if (resolved.kind === "absent") {
      drop("no NAME=value given");
      continue;
    }
    const text = resolved.kind === "user" ? (arg.value ?? "") : resolved.value;
    const eq = text.indexOf("=");
    const name = eq > 0 ? text.slice(0, eq) : text;
    if (!ENV_NAME_PATTERN.test(name)) {
      drop(`"${text}" does not name a valid environment variable`);
      continue;
    }
    if (resolved.kind === "user") {
      out.userConfigurable = true;
      drop(`${name} needs user input (${resolved.needs.join(", ")}); users set it in config.environment`);
      continue;
    }
    if (eq < 0) {
      drop(`-e ${name} passes the host's value, which the container never sees here`);
      continue;
    }
    out.environment[name] = text.slice(eq + 1);
    report.notes.push(`${field}: environment ${name}`);
  }
  return out;
}
