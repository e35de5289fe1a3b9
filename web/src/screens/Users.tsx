import { ApiFailure } from "../api/client.js";
import type { UserOverview, UserStatus } from "../api/types.js";
import { ErrorNote, Loading, PhaseBadge, ProblemList, formatTime } from "../components/common.js";
import { hrefOf } from "../state/router.js";
import { useLiveRefresh, useResource } from "../state/resource.js";
import { signed } from "../state/session.js";

interface Row {
  overview: UserOverview;
  status: UserStatus | null;
}

/** Admin: every user with phase, server counts, and resource use against limits. */
export function Users() {
  const client = signed.value!.client;
  const users = useResource("users-overview", async (s) => {
    const answer = await client.get<{ users: UserOverview[]; problems: string[] }>("/admin/users", s);
    const rows = await Promise.all(
      answer.users.map(async (overview): Promise<Row> => {
        try {
          return { overview, status: await client.get<UserStatus>(`/users/${overview.user_id}/status`, s) };
        } catch (error) {
          if (error instanceof ApiFailure && error.status === 404) return { overview, status: null };
          throw error;
        }
      }),
    );
    return { rows, problems: answer.problems };
  });
  useLiveRefresh(null, users.reload, 1000);
  return (
    <>
      <h1>Users</h1>
      {users.data === undefined && users.loading ? <Loading what="users" /> : null}
      <ErrorNote error={users.error} />
      <ProblemList problems={users.data?.problems ?? []} />
      <div class="table-wrap" tabIndex={0} role="region" aria-label="Users">
        <table>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Phase</th>
              <th scope="col">Servers (running / total)</th>
              <th scope="col">Containers</th>
              <th scope="col">Memory MB</th>
              <th scope="col">CPU shares</th>
              <th scope="col">Ports</th>
              <th scope="col">Last reconcile</th>
            </tr>
          </thead>
          <tbody>
            {users.data?.rows.map(({ overview, status }) => {
              const r = status?.resources;
              const pair = (used: number | undefined, max: number | undefined) =>
                used === undefined || max === undefined ? "—" : `${used} / ${max}`;
              return (
                <tr key={overview.user_id} data-user={overview.user_id}>
                  <th scope="row">
                    <a href={hrefOf({ screen: "monitor", user: overview.user_id })}>{overview.user_id}</a>
                  </th>
                  <td>
                    <PhaseBadge phase={overview.phase} />
                  </td>
                  <td>
                    {overview.servers.running} / {overview.servers.total}
                    {overview.servers.blocked + overview.servers.failed > 0
                      ? ` (${overview.servers.blocked} blocked, ${overview.servers.failed} failed)`
                      : ""}
                  </td>
                  <td>{pair(r?.used.containers, r?.limits.max_containers)}</td>
                  <td>{pair(r?.used.memory_mb, r?.limits.max_memory_mb)}</td>
                  <td>{pair(r?.used.cpu_shares, r?.limits.max_cpu_shares)}</td>
                  <td>{pair(r?.used.ports, r?.limits.max_ports)}</td>
                  <td>
                    {overview.last_reconcile
                      ? `${formatTime(overview.last_reconcile.time)}: ${overview.last_reconcile.summary}`
                      : "—"}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}
