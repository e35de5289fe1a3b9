// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * Modules that decide (merge, desired state, plan, status projection): pure functions of data. They may not
 * import anything that does I/O, so the split between deciding and doing stays (docs/architecture.md).
 */
const DECISION_MODULES = [
  "src/desired/**/*.ts",
  "src/catalog/merge.ts",
  "src/reconcile/plan.ts",
  "src/reconcile/decide.ts",
  "src/reconcile/idle.ts",
  "src/reconcile/status-projection.ts",
  "src/reconcile/allocator.ts",
  "src/reconcile/resync-listing.ts",
  "src/swarm/placement.ts",
  "src/swarm/service-spec.ts",
];
const IO_MODULES = [
  "fs",
  "fs/promises",
  "node:fs",
  "node:fs/promises",
  "net",
  "node:net",
  "http",
  "node:http",
  "https",
  "node:https",
  "child_process",
  "node:child_process",
  "dockerode",
  "chokidar",
];

export default tseslint.config(
  { ignores: [".node/**", "dist/**", "node_modules/**", "coverage/**", "manifests/**", "eslint.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: DECISION_MODULES,
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: IO_MODULES.map((name) => ({
            name,
            message: "decision modules are pure: do the I/O in a shell and pass the data in",
          })),
          patterns: [
            {
              group: ["**/docker/dockerode-runtime*", "**/docker/connect*", "**/observability/*", "**/api/*"],
              message: "decision modules are pure: do the I/O in a shell and pass the data in",
            },
          ],
        },
      ],
    },
  },
);
