import { useState } from "preact/hooks";
import { ApiFailure } from "../api/client.js";
import type { ContainersAnswer, LogsAnswer, UserOverview, UserStatus } from "../api/types.js";
import { ErrorNote, Loading, PhaseBadge, ProblemList, formatTime } from "../components/common.js";
import { hrefOf } from "../state/router.js";
import { useLiveRefresh, usePolling, useResource } from "../state/resource.js";
import { isAdmin, signed } from "../state/session.js";

/** How often an open monitor re-reads the engine's view (restarts and start times come with no event). */
const ENGINE_POLL_MS = 5000;

/** Live state of servers: the admin sees every user (or one), a user only themselves. */
export function Monitor({ user }: { user: string | null }) {
  if (user !== null) {
    return (
      <>
        <h1>Server Monitor: {user}</h1>
        {isAdmin.value ? (
          <p>
            <a href={hrefOf({ screen: "monitor", user: null })}>All users</a>
          </p>
        ) : null}
        <UserMonitor key={user} userId={user} open />
      </>
    );
  }
  return <AllUsers />;
}

function AllUsers() {
  const client = signed.value!.client;
  const users = useResource("monitor-users", (s) =>
    client.get<{ users: UserOverview[]; problems: string[] }>("/admin/users", s),
  );
  useLiveRefresh(null, users.reload, 1000);
  return (
    <>
      <h1>Server Monitor</h1>
      {users.data === undefined && users.loading ? <Loading what="users" /> : null}
      <ErrorNote error={users.error} />
      <ProblemList problems={users.data?.problems ?? []} />
      {users.data?.users.map((u) => (
        <UserMonitor key={u.user_id} userId={u.user_id} open={false} />
      ))}
    </>
  );
}

async function orNull<T>(load: Promise<T>): Promise<T | null> {
  try {
    return await load;
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 404) return null;
    throw error;
  }
}

function UserMonitor({ userId, open }: { userId: string; open: boolean }) {
  const client = signed.value!.client;
  // In the all-users view a user's engine view is read only while their details are open.
  const [expanded, setExpanded] = useState(open);
  const status = useResource(`mon-status:${userId}`, (s) =>
    orNull(client.get<UserStatus>(`/users/${userId}/status`, s)),
  );
  const containers = useResource(`mon-containers:${userId}:${expanded}`, (s) =>
    expanded ? client.get<ContainersAnswer>(`/users/${userId}/containers`, s) : Promise.resolve(undefined),
  );
  useLiveRefresh(userId, () => {
    status.reload();
    containers.reload();
  });
  usePolling(containers.reload, ENGINE_POLL_MS, expanded);
  const data = status.data;
  const headingId = `mon-${userId}`;
  const body = (
    <>
      {data === undefined && status.loading ? <Loading what={`${userId}'s status`} /> : null}
      <ErrorNote error={status.error} />
      {data === null ? (
        <p class="muted">No status yet: the controller has not reconciled this user.</p>
      ) : null}
      {data ? (
        <>
          <Resources status={data} />
          <Servers
            userId={userId}
            status={data}
            containers={containers.data}
            containersError={containers.error}
          />
          <Conditions status={data} />
        </>
      ) : null}
    </>
  );
  return (
    <section class="user-monitor card" aria-labelledby={headingId} data-user={userId}>
      <h2 id={headingId}>
        {userId} <PhaseBadge phase={data?.phase ?? null} label="User phase" />
      </h2>
      {open ? (
        body
      ) : (
        <details onToggle={(e) => setExpanded(e.currentTarget.open)}>
          <summary>Details of {userId}</summary>
          {body}
        </details>
      )}
    </section>
  );
}

function Resources({ status }: { status: UserStatus }) {
  if (status.resources === null) return null;
  const { used, limits } = status.resources;
  const rows: [string, number, number, string][] = [
    ["Containers", used.containers, limits.max_containers, ""],
    ["Memory", used.memory_mb, limits.max_memory_mb, " MB"],
    ["CPU shares", used.cpu_shares, limits.max_cpu_shares, ""],
    ["Ports", used.ports, limits.max_ports, ""],
  ];
  return (
    <div class="resources">
      <h3>Resources against limits</h3>
      <dl>
        {rows.map(([label, value, max, unit]) => {
          const id = `res-${status.user_id}-${label.replace(/\W/g, "")}`;
          return (
            <div key={label} class="meter-row">
              <dt id={id}>{label}</dt>
              <dd>
                <meter aria-labelledby={id} min={0} max={Math.max(max, 1)} value={value} high={max * 0.9}>
                  {value} of {max}
                </meter>{" "}
                {value}
                {unit} of {max}
                {unit}
              </dd>
            </div>
          );
        })}
      </dl>
    </div>
  );
}

function Servers(props: {
  userId: string;
  status: UserStatus;
  containers: ContainersAnswer | undefined;
  containersError: unknown;
}) {
  const [logFor, setLogFor] = useState<string | null>(null);
  const byServer = new Map((props.containers?.containers ?? []).map((c) => [c.server_id, c]));
  if (props.status.servers.length === 0) return <p class="muted">No servers enabled.</p>;
  return (
    <>
      <h3>Servers</h3>
      <ErrorNote error={props.containersError} />
      <div class="table-wrap" tabIndex={0} role="region" aria-label={`Servers of ${props.userId}`}>
        <table>
          <thead>
            <tr>
              <th scope="col">Server</th>
              <th scope="col">Phase</th>
              <th scope="col">Health</th>
              <th scope="col">Reason</th>
              <th scope="col">Container</th>
              <th scope="col">Restarts</th>
              <th scope="col">Started</th>
              <th scope="col">Log</th>
            </tr>
          </thead>
          <tbody>
            {props.status.servers.map((server) => {
              const container = byServer.get(server.id);
              return (
                <tr key={server.id} data-server={server.id}>
                  <th scope="row">{server.id}</th>
                  <td>
                    <PhaseBadge phase={server.phase} />
                  </td>
                  <td>{server.health ? <PhaseBadge phase={server.health} /> : "—"}</td>
                  <td>
                    {server.reason ?? "—"}
                    {server.message ? <div class="small">{server.message}</div> : null}
                  </td>
                  <td>
                    {container ? (
                      <>
                        {container.state}
                        {container.exit_code !== null ? ` (exit ${container.exit_code})` : ""}
                        {container.oom_killed ? " OOM-killed" : ""}
                        {container.error ? <div class="small">{container.error}</div> : null}
                      </>
                    ) : (
                      "—"
                    )}
                  </td>
                  <td>{container ? `${container.restarts}${container.restarts_exact ? "" : "+"}` : "—"}</td>
                  <td>{formatTime(container?.started_at)}</td>
                  <td>
                    {container ? (
                      <button
                        type="button"
                        class="secondary"
                        aria-expanded={logFor === server.id}
                        onClick={() => setLogFor(logFor === server.id ? null : server.id)}
                      >
                        {logFor === server.id ? "Hide log" : "Show log"}{" "}
                        <span class="visually-hidden">of {server.id}</span>
                      </button>
                    ) : (
                      "—"
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {logFor !== null ? <LogView key={logFor} userId={props.userId} serverId={logFor} /> : null}
    </>
  );
}

function LogView({ userId, serverId }: { userId: string; serverId: string }) {
  const client = signed.value!.client;
  const log = useResource(`log:${userId}:${serverId}`, (s) =>
    client.get<LogsAnswer>(`/users/${userId}/servers/${serverId}/logs?lines=200`, s),
  );
  const text = log.data?.lines.join("\n") ?? "";
  return (
    <div class="log-view" aria-labelledby={`log-${userId}-${serverId}`}>
      <h4 id={`log-${userId}-${serverId}`}>Log of {serverId} (last 200 lines)</h4>
      <button type="button" class="secondary" onClick={log.reload}>
        Refresh log
      </button>
      {log.data === undefined && log.loading ? <Loading what="the log" /> : null}
      <ErrorNote error={log.error} />
      {log.data ? (
        <>
          <p class="muted small">
            {log.data.lines.length} line(s){log.data.truncated ? ", older output cut" : ""}
            {log.data.redactions > 0 ? `, ${log.data.redactions} secret value(s) redacted` : ""}
          </p>
          <pre class="log" tabIndex={0} aria-label={`Log lines of ${serverId}`}>
            {text === "" ? "(empty)" : text}
          </pre>
        </>
      ) : null}
    </div>
  );
}

function Conditions({ status }: { status: UserStatus }) {
  return (
    <details class="conditions">
      <summary>Conditions, errors and recent reconciles</summary>
      <div class="table-wrap" tabIndex={0} role="region" aria-label={`Conditions of ${status.user_id}`}>
        <table>
          <thead>
            <tr>
              <th scope="col">Condition</th>
              <th scope="col">Status</th>
              <th scope="col">Reason</th>
              <th scope="col">Message</th>
              <th scope="col">Since</th>
            </tr>
          </thead>
          <tbody>
            {status.conditions.map((c) => (
              <tr key={c.type}>
                <th scope="row">{c.type}</th>
                <td>{c.status}</td>
                <td>{c.reason}</td>
                <td>{c.message}</td>
                <td>{formatTime(c.last_transition_time)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {status.errors.length > 0 ? (
        <>
          <h4>Errors</h4>
          <ProblemList problems={status.errors.map((e) => `${e.file}: ${e.path}: ${e.message}`)} />
        </>
      ) : null}
      <h4>Recent reconciles</h4>
      <ul class="small">
        {status.last_reconciles.map((r) => (
          <li key={r.time}>
            {formatTime(r.time)}: {r.result}, {r.summary} ({r.duration_ms} ms)
          </li>
        ))}
      </ul>
    </details>
  );
}
