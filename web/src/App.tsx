import type { ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";
import { liveState } from "./api/live-events.js";
import { READ_ONLY_NOTE_ID, READ_ONLY_REASON } from "./components/common.js";
import { Catalogs } from "./screens/Catalogs.js";
import { Dashboard } from "./screens/Dashboard.js";
import { Monitor } from "./screens/Monitor.js";
import { SignIn } from "./screens/SignIn.js";
import { Users } from "./screens/Users.js";
import { type Screen, hrefOf, route } from "./state/router.js";
import { isAdmin, ownUser, readOnly, restoring, signOut, signed } from "./state/session.js";

const LIVE_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  refused: "Live updates refused",
  closed: "Offline",
} as const;

export function App() {
  const session = signed.value;
  useEffect(() => {
    document.title = session ? `${titleOf(route.value.screen)} · mcp-portal` : "Sign in · mcp-portal";
  }, [session, route.value.screen]);
  if (restoring.value) return <p role="status">Loading…</p>;
  if (session === null) return <SignIn />;
  const current = route.value;
  const admin = isAdmin.value;
  const screen: Screen =
    !admin && (current.screen === "catalogs" || current.screen === "users") ? "dashboard" : current.screen;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <div class="brand">mcp-portal</div>
        <nav aria-label="Screens">
          <ul>
            <NavLink screen="dashboard" current={screen}>
              Dashboard
            </NavLink>
            <NavLink screen="monitor" current={screen}>
              Monitor
            </NavLink>
            {admin ? (
              <>
                <NavLink screen="catalogs" current={screen}>
                  Catalogs
                </NavLink>
                <NavLink screen="users" current={screen}>
                  Users
                </NavLink>
              </>
            ) : null}
          </ul>
        </nav>
        <div class="who">
          <span class={`live live-${liveState.value}`} role="status">
            {LIVE_LABELS[liveState.value]}
          </span>
          <span>
            Signed in as <strong>{admin ? "admin" : ownUser.value}</strong>
          </span>
          <button type="button" class="secondary" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      {readOnly.value ? (
        <p class="banner" id={READ_ONLY_NOTE_ID}>
          {READ_ONLY_REASON} Every change button is disabled.
        </p>
      ) : null}
      <main id="main" tabIndex={-1}>
        {screen === "dashboard" ? <Dashboard user={admin ? current.user : ownUser.value} /> : null}
        {screen === "monitor" ? <Monitor user={admin ? current.user : ownUser.value} /> : null}
        {screen === "catalogs" ? <Catalogs /> : null}
        {screen === "users" ? <Users /> : null}
      </main>
      <footer class="muted small">mcp-portal {session.session.version}</footer>
    </>
  );
}

function titleOf(screen: Screen): string {
  return { dashboard: "Dashboard", monitor: "Server Monitor", catalogs: "Catalog Manager", users: "Users" }[
    screen
  ];
}

function NavLink({
  screen,
  current,
  children,
}: {
  screen: Screen;
  current: Screen;
  children: ComponentChildren;
}) {
  const user = route.value.user;
  const keepsUser = screen === "dashboard" || screen === "monitor";
  return (
    <li>
      <a
        href={hrefOf({ screen, user: keepsUser ? user : null })}
        aria-current={screen === current ? "page" : undefined}
      >
        {children}
      </a>
    </li>
  );
}
