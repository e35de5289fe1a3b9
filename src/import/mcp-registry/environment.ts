import { ENV_NAME_PATTERN, SECRET_NAME_PATTERN } from "../../util/ids.js";
import type { ServerReport } from "../report.js";
import { formatProblem, resolveInput } from "./inputs.js";
import type { KeyValueInput } from "./schema.js";

/*
 * environmentVariables: `isSecret` ones become required secrets (injected from the user's encrypted secrets.env),
 * fixed values and defaults become the server's environment, and whatever the user is asked for becomes user
 * configuration (`user_configurable`: each user sets it in enabled-servers.json `config.environment`).
 */

export interface EnvironmentMapping {
  environment: Record<string, string>;
  secrets: string[];
  /** Some variable is the user's to set (optional, required without default, or overridable default). */
  userConfigurable: boolean;
}

const MAX_SECRETS = 64;
const MAX_VALUE_LENGTH = 32_768;

export function mapEnvironment(
  variables: readonly KeyValueInput[] | undefined,
  report: ServerReport,
): EnvironmentMapping {
  const out: EnvironmentMapping = { environment: {}, secrets: [], userConfigurable: false };
  const seen = new Set<string>();
  const drop = (name: string, reason: string) => report.dropped.push({ field: `env ${name}`, reason });
  for (const variable of variables ?? []) {
    const { name } = variable;
    if (!ENV_NAME_PATTERN.test(name)) {
      drop(name, "not a valid environment variable name");
      continue;
    }
    if (seen.has(name)) {
      drop(name, "declared twice; the first declaration is used");
      continue;
    }
    seen.add(name);
    if (variable.isSecret === true) {
      mapSecret(variable, out, report);
      continue;
    }
    const resolved = resolveInput(variable);
    if (resolved.kind === "user") {
      out.userConfigurable = true;
      drop(
        name,
        `its value ${JSON.stringify(variable.value)} needs ${resolved.secret ? "a secret" : `user input (${resolved.needs.join(", ")})`}; users set ${name} in config.environment`,
      );
      continue;
    }
    if (resolved.kind === "absent") {
      out.userConfigurable = true;
      report.notes.push(
        variable.isRequired === true
          ? `env ${name} is required and has no default: each user sets it in config.environment`
          : `env ${name} is optional: users may set it in config.environment`,
      );
      continue;
    }
    const problem = formatProblem(variable, resolved.value);
    if (problem !== undefined) {
      out.userConfigurable = true;
      drop(name, `${problem}; users set ${name} in config.environment`);
      continue;
    }
    if (resolved.value.length > MAX_VALUE_LENGTH) {
      drop(name, `value longer than ${MAX_VALUE_LENGTH} characters`);
      continue;
    }
    out.environment[name] = resolved.value;
    if (resolved.kind === "default") {
      out.userConfigurable = true;
      report.notes.push(
        `env ${name}=${JSON.stringify(resolved.value)} (the default${variable.choices?.length ? `; one of ${variable.choices.join(", ")}` : ""}): users may override it in config.environment`,
      );
    }
  }
  return out;
}

function mapSecret(variable: KeyValueInput, out: EnvironmentMapping, report: ServerReport): void {
  const { name } = variable;
  if (!SECRET_NAME_PATTERN.test(name)) {
    out.userConfigurable = true;
    report.dropped.push({
      field: `env ${name}`,
      reason: `a secret, but secret names must be upper-case (^[A-Z_][A-Z0-9_]*$) and the server reads ${name}: users set it in config.environment, which is not encrypted`,
    });
    return;
  }
  if (out.secrets.length >= MAX_SECRETS) {
    report.dropped.push({
      field: `env ${name}`,
      reason: `a secret beyond the ${MAX_SECRETS} the schema allows`,
    });
    return;
  }
  out.secrets.push(name);
  report.notes.push(`env ${name} (secret) -> required secret ${name}`);
  if (variable.isRequired !== true) {
    report.notes.push(
      `secret ${name} is optional in the source but required here: the server waits until it is set`,
    );
  }
  if (variable.value !== undefined || variable.default !== undefined) {
    report.dropped.push({
      field: `env ${name} value`,
      reason:
        "a secret's value or default is never put in the catalog; users set it with `mcp-portal secrets set`",
    });
  }
}
