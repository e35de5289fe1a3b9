/**
 * Removes whatever benchmark runs left on the engine (after a kill -9, say): every container, network and volume
 * whose `mcp.portal.installation` label starts with `bench-`. Objects of other installations are never touched.
 * Run: npm run bench:cleanup
 */
import Docker from "dockerode";
import { cleanupWhere } from "../test/helpers/docker-objects.js";

const removed = await cleanupWhere(new Docker(), (installation) => installation.startsWith("bench-"));
process.stdout.write(
  `removed ${removed.containers} containers, ${removed.networks} networks, ${removed.volumes} volumes of bench-* installations\n`,
);
