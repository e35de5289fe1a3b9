import type { IncomingMessage } from "node:http";
import { performance } from "node:perf_hooks";
import { type Caller, actorOf } from "../auth/authenticate.js";
import type { AuditResult, AuditWriter } from "../observability/audit.js";
import { type AccessStore, serverAccess } from "./access-store.js";
import type { ServerTarget } from "./endpoint.js";
import type { ToolAccess, ToolCallOutcome, ToolCallRecord } from "./handler.js";
import { headerValue } from "./http-util.js";
import type { GatewayMetrics } from "./metrics.js";
import { type RateCheck, type RateLimiter, type RateScope } from "./rate-limit.js";
import { ALL_TOOLS, NO_TOOLS, type ToolFilter, hiddenToolMessage, toolFilter } from "./tool-policy.js";

/*
 * What an authorized request may do on a server, decided by the gateway before it reaches the container: the rate
 * limits of its user and server (policy.json, via the controller's access file), and the tool policy its tools/call
 * and tools/list messages are held to, with one audit line and a metric per tools/call.
 */

export type Admission =
  { ok: true; tools: ToolAccess } | { ok: false; scope: RateScope; retryAfterSeconds: number };

export interface AccessControlDeps {
  store: AccessStore;
  limiter: RateLimiter;
  metrics: GatewayMetrics;
  /** The gateway's audit log (`<state-dir>/gateway/audit.log`); absent: calls are only counted. */
  audit: AuditWriter | undefined;
}

const AUDIT_RESULTS: Record<ToolCallOutcome, AuditResult> = {
  success: "success",
  tool_error: "success",
  error: "failure",
  refused: "blocked",
  limit_exceeded: "blocked",
  timeout: "failure",
  unavailable: "failure",
  cancelled: "failure",
  no_response: "failure",
};

export class AccessControl {
  constructor(private readonly deps: AccessControlDeps) {}

  async admit(target: ServerTarget, caller: Caller, req: IncomingMessage): Promise<Admission> {
    const view = serverAccess(await this.deps.store.get(target.userId), target.serverId);
    const checks: RateCheck[] = [];
    if (view.kind === "server") {
      if (view.userRateLimit)
        checks.push({ key: `user:${target.userId}`, scope: "user", limit: view.userRateLimit });
      if (view.access.rate_limit)
        checks.push({ key: `server:${target.key}`, scope: "server", limit: view.access.rate_limit });
    }
    const verdict = this.deps.limiter.take(checks);
    if (!verdict.ok) {
      this.deps.metrics.rateLimitedTotal.inc({ scope: verdict.scope });
      return verdict;
    }
    let filter: ToolFilter;
    let unusable: string | undefined;
    switch (view.kind) {
      case "open":
        filter = ALL_TOOLS;
        break;
      case "server":
        filter = toolFilter(view.access.tools);
        break;
      case "unlisted":
        filter = NO_TOOLS;
        break;
      case "unusable":
        filter = NO_TOOLS;
        unusable =
          "the tool policy of this user cannot be read (see the gateway's log); no tool is available";
        break;
    }
    return { ok: true, tools: this.toolAccess(target, caller, req, filter, unusable) };
  }

  /** A server no longer served: its rate-limit bucket goes. */
  forget(target: ServerTarget): void {
    this.deps.limiter.forget(`server:${target.key}`);
  }

  private toolAccess(
    target: ServerTarget,
    caller: Caller,
    req: IncomingMessage,
    filter: ToolFilter,
    unusable: string | undefined,
  ): ToolAccess {
    const { metrics, audit } = this.deps;
    const userAgent = headerValue(req, "user-agent");
    const ip = req.socket.remoteAddress;
    return {
      filter,
      restricted: filter !== ALL_TOOLS,
      refusal: (name) =>
        unusable !== undefined ? `${hiddenToolMessage(name)}: ${unusable}` : hiddenToolMessage(name),
      begin: (tool, bytesIn): ToolCallRecord => {
        const started = performance.now();
        let finished = false;
        return {
          finish: (outcome, bytesOut) => {
            if (finished) return;
            finished = true;
            const seconds = (performance.now() - started) / 1000;
            metrics.toolCallsTotal.inc({ result: outcome });
            metrics.toolCallDurationSeconds.observe(seconds);
            // Names, sizes and identities only: never an argument or a result value.
            void audit?.write({
              event_type: "TOOL_CALL",
              user_id: target.userId,
              action: "tools/call",
              resource: `${target.userId}/${target.serverId}/${tool === undefined ? "-" : tool.slice(0, 128)}`,
              result: AUDIT_RESULTS[outcome],
              details: {
                server_id: target.serverId,
                tool: tool === undefined ? null : tool.slice(0, 128),
                outcome,
                caller: actorOf(caller),
                ...(caller.oidc?.clientId !== undefined
                  ? { client_id: caller.oidc.clientId.slice(0, 256) }
                  : {}),
                ...(caller.kind === "user" && !caller.oidc ? { token_id: caller.tokenId } : {}),
                duration_ms: Math.round(seconds * 1000 * 10) / 10,
                bytes_in: bytesIn,
                bytes_out: bytesOut,
                transport: target.transport,
              },
              ...(ip !== undefined ? { ip_address: ip } : {}),
              ...(userAgent !== undefined ? { user_agent: userAgent.slice(0, 512) } : {}),
            });
          },
        };
      },
    };
  }
}
