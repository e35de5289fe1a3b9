import type { UserOverview } from "../api/types.js";
import { hrefOf, type Screen } from "../state/router.js";
import { useResource } from "../state/resource.js";
import { signed } from "../state/session.js";
import { ErrorNote, Loading, PhaseBadge } from "./common.js";

/** The admin picks whose dashboard to open. */
export function UserPicker({ screen }: { screen: Screen }) {
  const client = signed.value!.client;
  const users = useResource("users", (signal) =>
    client.get<{ users: UserOverview[]; problems: string[] }>("/admin/users", signal),
  );
  return (
    <section aria-labelledby="pick-user">
      <h2 id="pick-user">Choose a user</h2>
      {users.data === undefined && users.loading ? <Loading what="users" /> : null}
      <ErrorNote error={users.error} />
      <ul class="user-list">
        {users.data?.users.map((user) => (
          <li key={user.user_id}>
            <a href={hrefOf({ screen, user: user.user_id })}>{user.user_id}</a>{" "}
            <PhaseBadge phase={user.phase} />
          </li>
        ))}
      </ul>
    </section>
  );
}
