/**
 * Removes what interrupted benchmark runs left on the engine (after a kill -9, say): every container, network and
 * volume whose `mcp.portal.installation` is a bench installation (`bench-<kind>-<pid>-<hex>`) whose run is no longer
 * a process on this host. Installations of running benchmarks are left alone, and so are bench names without a pid
 * (older runs) unless `--all` is given, which removes every `bench-*` installation. Objects of other installations
 * (tests, a real deployment) are never touched.
 * Run: npm run bench:cleanup [-- --all]
 */
import Docker from "dockerode";
import { cleanupWhere } from "../test/helpers/docker-objects.js";
import { type CleanupVerdict, cleanupVerdict, processAlive } from "./lib/installation.js";

const all = process.argv.includes("--all");
const verdicts = new Map<string, CleanupVerdict>();
const removed = await cleanupWhere(new Docker(), (installation) => {
  const verdict = cleanupVerdict(installation, processAlive, all);
  verdicts.set(installation, verdict);
  return verdict === "remove";
});
const names = (verdict: CleanupVerdict) =>
  [...verdicts].filter(([, v]) => v === verdict).map(([name]) => name);
process.stdout.write(
  `removed ${removed.containers} containers, ${removed.networks} networks, ${removed.volumes} volumes of ` +
    `${names("remove").length} abandoned bench installation(s)\n`,
);
if (names("in-use").length > 0)
  process.stdout.write(`left alone, their run is still going: ${names("in-use").join(", ")}\n`);
if (names("unknown-owner").length > 0)
  process.stdout.write(
    `left alone, no owner in the name (npm run bench:cleanup -- --all removes them): ${names("unknown-owner").join(", ")}\n`,
  );
