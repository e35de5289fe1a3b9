import { spawnSync } from "node:child_process";

/** promtool is installed by the CI script; locally the promtool tests are skipped when it is absent. */
export const hasPromtool = spawnSync("promtool", ["--version"], { stdio: "ignore" }).status === 0;
export const skipPromtool = !hasPromtool && process.env.CI !== "true";

export interface PromtoolResult {
  status: number | null;
  output: string;
}

export function promtool(args: readonly string[], input?: string): PromtoolResult {
  const result = spawnSync("promtool", args, { input, encoding: "utf8", timeout: 30_000 });
  if (result.error !== undefined) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}
