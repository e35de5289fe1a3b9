import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration files share one engine; running them one at a time keeps timing-sensitive assertions honest on 2 cores.
    fileParallelism: false,
    reporters: ["default"],
  },
});
