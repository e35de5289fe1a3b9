import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { createMetrics } from "../../../src/observability/metrics.js";
import { promtool, skipPromtool } from "./promtool.js";

const monitoringDir = fileURLToPath(new URL("../../../manifests/monitoring/", import.meta.url));
const file = (name: string): string => `${monitoringDir}${name}`;

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}
interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating?: { list: { query?: unknown; definition?: string }[] };
}

async function exposedNames(): Promise<Set<string>> {
  const json = await createMetrics(new Registry()).registry.getMetricsAsJSON();
  const names = new Set<string>();
  for (const metric of json) {
    names.add(metric.name);
    // prom-client's typings declare a numeric enum; at runtime the type is the exposition-format string.
    if ((metric.type as unknown) === "histogram")
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(metric.name + suffix);
  }
  return names;
}

/** Metric names in a PromQL expression: identifiers of the families we export (ours, process_*, nodejs_*). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(?:mcp_portal|process|nodejs)_[a-zA-Z0-9_]+/g)].map((match) => match[0]);
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);
}

describe("manifests/monitoring", () => {
  it.skipIf(skipPromtool)("alerts.yml passes promtool check rules", () => {
    const result = promtool(["check", "rules", file("alerts.yml")]);
    expect(result.output).toContain("SUCCESS");
    expect(result.status).toBe(0);
  });

  it.skipIf(skipPromtool)("prometheus.yml passes promtool check config, rule files included", () => {
    const result = promtool(["check", "config", file("prometheus.yml")]);
    expect(result.output).toContain("SUCCESS: 1 rule files found");
    expect(result.status).toBe(0);
  });

  it("alerts.yml covers the operator's alerts with summary and description, on exported metrics only", async () => {
    const text = await readFile(file("alerts.yml"), "utf8");
    for (const alert of [
      "McpPortalDown",
      "McpPortalReconcileErrors",
      "McpPortalWorkqueueBackingUp",
      "McpPortalUsersNotReady",
      "McpPortalPortPoolNearlyExhausted",
      "McpPortalPortPoolExhausted",
      "McpPortalSubnetPoolNearlyExhausted",
      "McpPortalSubnetPoolExhausted",
      "McpPortalInvalidDesiredStateFiles",
      "McpPortalDockerUnreachable",
    ]) {
      expect(text).toContain(`alert: ${alert}\n`);
    }
    const alerts = text.split("- alert: ").slice(1);
    for (const alert of alerts) {
      expect(alert).toContain("summary:");
      expect(alert).toContain("description:");
    }
    const names = await exposedNames();
    for (const name of metricNames(text)) expect(names, `alerts.yml uses ${name}`).toContain(name);
  });

  // The pool alerts fire before a pool runs out (warning above 80 %) and when it has (critical), not before.
  it.skipIf(skipPromtool)(
    "the pool alerts fire at 80 % and at exhaustion (promtool test rules)",
    async () => {
      const dir = await mkdtemp(path.join(tmpdir(), "mcp-portal-alerts-"));
      try {
        // promtool compares annotations too: test the expressions, durations and labels on a copy without them.
        const rules = parse(await readFile(file("alerts.yml"), "utf8")) as {
          groups: { rules: { annotations?: unknown }[] }[];
        };
        for (const group of rules.groups) for (const rule of group.rules) delete rule.annotations;
        await writeFile(path.join(dir, "alerts.yml"), stringify(rules));
        const expect_ = (alertname: string, minute: number, severity?: string) => ({
          eval_time: `${minute}m`,
          alertname,
          exp_alerts: severity ? [{ exp_labels: { severity, instance: "c" } }] : [],
        });
        // Minutes 0-9: half full; 10-19: 81 %; 20-40: full. Ports in blocks of 16 (1,231 blocks), subnets /27s of a /16.
        const series = (name: string, capacity: number) => [
          { series: `${name}_capacity{instance="c"}`, values: `${capacity}x40` },
          {
            series: `${name}_allocated{instance="c"}`,
            values: `${capacity / 2}x9 ${Math.ceil(capacity * 0.81)}x9 ${capacity}x20`,
          },
        ];
        const tests = {
          rule_files: ["alerts.yml"],
          evaluation_interval: "1m",
          tests: [
            {
              interval: "1m",
              input_series: [
                ...series("mcp_portal_port_pool", 1231 * 16),
                ...series("mcp_portal_subnet_pool", 2048),
              ],
              alert_rule_test: ["Port", "Subnet"].flatMap((pool) => [
                expect_(`McpPortal${pool}PoolNearlyExhausted`, 9),
                expect_(`McpPortal${pool}PoolNearlyExhausted`, 13),
                expect_(`McpPortal${pool}PoolNearlyExhausted`, 16, "warning"),
                expect_(`McpPortal${pool}PoolExhausted`, 19),
                expect_(`McpPortal${pool}PoolExhausted`, 22, "critical"),
              ]),
            },
          ],
        };
        await writeFile(path.join(dir, "alerts.test.yml"), stringify(tests));
        const result = promtool(["test", "rules", path.join(dir, "alerts.test.yml")]);
        expect(result.output).toContain("SUCCESS");
        expect(result.status).toBe(0);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it("grafana-dashboard.json is a dashboard whose queries use only exported metrics", async () => {
    const dashboard = JSON.parse(await readFile(file("grafana-dashboard.json"), "utf8")) as Dashboard;
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.uid).toBeTruthy();
    expect(dashboard.schemaVersion).toBeGreaterThan(30);
    const panels = allPanels(dashboard.panels);
    expect(panels.length).toBeGreaterThanOrEqual(4);
    const exprs = panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr ?? ""));
    exprs.push(...(dashboard.templating?.list ?? []).map((variable) => variable.definition ?? ""));
    const used = new Set(exprs.flatMap(metricNames));
    expect(used.size).toBeGreaterThanOrEqual(10);
    const names = await exposedNames();
    for (const name of used) expect(names, `dashboard uses ${name}`).toContain(name);
  });
});
