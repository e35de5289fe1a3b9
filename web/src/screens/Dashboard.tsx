import { useMemo, useState } from "preact/hooks";
import type {
  CatalogServer,
  CatalogServersAnswer,
  EnabledServersAnswer,
  SecretsAnswer,
  ServerStatus,
  UserStatus,
} from "../api/types.js";
import { ApiFailure } from "../api/client.js";
import { ClientConfig } from "../components/ClientConfig.js";
import { ConfigForm } from "../components/ConfigForm.js";
import { Secrets } from "../components/Secrets.js";
import { UserPicker } from "../components/UserPicker.js";
import {
  CopyButton,
  ErrorNote,
  Loading,
  PhaseBadge,
  ProblemList,
  WriteButton,
} from "../components/common.js";
import { mcpUrl } from "../lib/mcp-clients.js";
import { toolPolicyText } from "../lib/tool-policy-text.js";
import { useLiveRefresh, useResource } from "../state/resource.js";
import { signed } from "../state/session.js";

/** The user's servers: what runs (with its MCP URL and client config), the catalog to enable from, secrets. */
export function Dashboard({ user }: { user: string | null }) {
  if (user === null) {
    return (
      <>
        <h1>Dashboard</h1>
        <UserPicker screen="dashboard" />
      </>
    );
  }
  return <UserDashboard key={user} userId={user} />;
}

async function statusOf(load: () => Promise<UserStatus>): Promise<UserStatus | null> {
  try {
    return await load();
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 404) return null;
    throw error;
  }
}

function UserDashboard({ userId }: { userId: string }) {
  const client = signed.value!.client;
  const catalog = useResource(`catalog:${userId}`, (s) =>
    client.get<CatalogServersAnswer>(`/users/${userId}/catalog/servers`, s),
  );
  const enabled = useResource(`enabled:${userId}`, (s) =>
    client.get<EnabledServersAnswer>(`/users/${userId}/enabled`, s),
  );
  const status = useResource(`status:${userId}`, () =>
    statusOf(() => client.get<UserStatus>(`/users/${userId}/status`)),
  );
  const secrets = useResource(`secrets:${userId}`, (s) =>
    client.get<SecretsAnswer>(`/users/${userId}/secrets`, s),
  );
  useLiveRefresh(userId, () => {
    status.reload();
    catalog.reload();
  });
  const [editing, setEditing] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  /** The last failed enable or disable, shown on the card it came from. */
  const [actionError, setActionError] = useState<{ serverId: string; error: unknown } | null>(null);
  const [notice, setNotice] = useState("");

  const reloadAll = () => {
    catalog.reload();
    enabled.reload();
    status.reload();
  };
  const servers = catalog.data?.servers ?? [];
  const byId = new Map(servers.map((s) => [s.id, s]));
  const statusById = new Map((status.data?.servers ?? []).map((s) => [s.id, s]));
  const secretNames = new Set((secrets.data?.secrets ?? []).map((s) => s.name));

  const enable = async (server: CatalogServer) => {
    setBusy(server.id);
    setActionError(null);
    try {
      await client.request(`/users/${userId}/servers/${server.id}/enable`, { method: "POST" });
      setNotice(`${server.display_name ?? server.name} enabled; it starts in a moment.`);
      reloadAll();
    } catch (error) {
      setActionError({ serverId: server.id, error });
    } finally {
      setBusy(null);
    }
  };
  const disable = async (serverId: string) => {
    setBusy(serverId);
    setActionError(null);
    try {
      await client.request(`/users/${userId}/servers/${serverId}/disable`, { method: "POST" });
      setNotice(`${serverId} disabled; its container is being removed.`);
      reloadAll();
    } catch (error) {
      setActionError({ serverId, error });
    } finally {
      setBusy(null);
    }
  };
  const errorFor = (serverId: string) => (actionError?.serverId === serverId ? actionError.error : null);

  return (
    <>
      <h1>Dashboard: {userId}</h1>
      <p class="visually-hidden" role="status">
        {notice}
      </p>
      <section aria-labelledby="enabled-title">
        <h2 id="enabled-title">Enabled servers</h2>
        {enabled.data === undefined && enabled.loading ? <Loading what="enabled servers" /> : null}
        <ErrorNote error={enabled.error} />
        {enabled.data && !enabled.data.valid ? (
          <div class="error" role="alert">
            <p>{enabled.data.file} is invalid; the last good state keeps running until it is fixed.</p>
            <ProblemList problems={enabled.data.problems} />
          </div>
        ) : null}
        {enabled.data?.valid && enabled.data.servers.length === 0 ? (
          <p class="muted">No server enabled yet: pick one from the catalog below.</p>
        ) : null}
        <ul class="cards" aria-label="Enabled servers">
          {enabled.data?.servers.map((entry) => {
            const server = byId.get(entry.id);
            return (
              <li class="card" key={entry.id} data-server={entry.id}>
                <EnabledServer
                  id={entry.id}
                  server={server}
                  status={statusById.get(entry.id)}
                  busy={busy === entry.id}
                  onConfigure={() => setEditing(entry.id)}
                  onDisable={() => void disable(entry.id)}
                />
                <ErrorNote error={errorFor(entry.id)} />
                {editing === entry.id && server ? (
                  <ConfigForm
                    userId={userId}
                    server={server}
                    current={entry.config}
                    onDone={(changed) => {
                      setEditing(null);
                      if (changed) reloadAll();
                    }}
                  />
                ) : null}
              </li>
            );
          })}
        </ul>
      </section>
      <Secrets userId={userId} answer={secrets} required={requiredSecrets(enabled.data, byId)} />
      <CatalogList
        userId={userId}
        answer={catalog.data}
        loading={catalog.loading}
        error={catalog.error}
        secretNames={secretNames}
        editing={editing}
        busy={busy}
        errorFor={errorFor}
        onEnable={(server) => (server.user_configurable ? setEditing(server.id) : void enable(server))}
        onDone={(changed) => {
          setEditing(null);
          if (changed) reloadAll();
        }}
      />
    </>
  );
}

function requiredSecrets(
  enabled: EnabledServersAnswer | undefined,
  byId: Map<string, CatalogServer>,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const entry of enabled?.servers ?? []) {
    for (const name of byId.get(entry.id)?.required_secrets ?? [])
      out.set(name, [...(out.get(name) ?? []), entry.id]);
  }
  return out;
}

function EnabledServer(props: {
  id: string;
  server: CatalogServer | undefined;
  status: ServerStatus | undefined;
  busy: boolean;
  onConfigure: () => void;
  onDisable: () => void;
}) {
  const { id, server, status } = props;
  const session = signed.value!.session;
  const url = mcpUrl({
    // The controller's `url` (MCP_PORTAL_PUBLIC_URL, port, /mcp) is what clients use and what tokens are for.
    url: status?.url ?? server?.url,
    publishHost: session.mcp.publish_host,
    hostPort: status?.host_port,
    pageHost: location.hostname,
  });
  const title = server?.display_name ?? server?.name ?? id;
  return (
    <>
      <h3>
        {title} <span class="muted small">({id})</span>
      </h3>
      <p class="status-line">
        <PhaseBadge phase={status?.phase ?? "Pending"} label="Phase" />
        {status?.health ? <PhaseBadge phase={status.health} label="Health" /> : null}
        {status?.reason ? <span class="reason">{status.reason}</span> : null}
      </p>
      {status === undefined ? <p class="muted small">Waiting for the controller to pick it up…</p> : null}
      {status?.message ? <p class="small">{status.message}</p> : null}
      {server === undefined ? <p class="error">This server is no longer in your catalog.</p> : null}
      <p class="small">{toolPolicyText(status?.tools)}</p>
      {url !== undefined && (status?.phase === "Running" || status?.phase === "Idle") ? (
        <div class="url">
          <span class="small">MCP URL</span> <code>{url}</code>{" "}
          <CopyButton text={url} label={`Copy URL of ${id}`} />
          <ClientConfig serverId={id} url={url} />
        </div>
      ) : null}
      <div class="actions">
        {server?.user_configurable ? (
          <WriteButton class="secondary" onClick={props.onConfigure}>
            Configure <span class="visually-hidden">{id}</span>
          </WriteButton>
        ) : null}
        <WriteButton class="danger" busy={props.busy} onClick={props.onDisable}>
          Disable <span class="visually-hidden">{id}</span>
        </WriteButton>
      </div>
    </>
  );
}

function CatalogList(props: {
  userId: string;
  answer: CatalogServersAnswer | undefined;
  loading: boolean;
  error: unknown;
  secretNames: ReadonlySet<string>;
  editing: string | null;
  busy: string | null;
  errorFor: (serverId: string) => unknown;
  onEnable: (server: CatalogServer) => void;
  onDone: (changed: boolean) => void;
}) {
  const [query, setQuery] = useState("");
  const [category, setCategory] = useState("");
  const servers = props.answer?.servers ?? [];
  const categories = useMemo(
    () =>
      [...new Set(servers.map((s) => s.category).filter((c): c is string => typeof c === "string"))].sort(),
    [servers],
  );
  const needle = query.trim().toLowerCase();
  const shown = servers.filter(
    (s) =>
      (category === "" || s.category === category) &&
      (needle === "" ||
        [s.id, s.name, s.display_name, s.description, s.category, s.image].some((v) =>
          v?.toLowerCase().includes(needle),
        )),
  );
  return (
    <section aria-labelledby="catalog-title">
      <h2 id="catalog-title">Catalog</h2>
      {props.answer?.using_last_good ? (
        <p class="warning">A catalog file is invalid: this is the last good catalog.</p>
      ) : null}
      <ProblemList problems={props.answer?.problems ?? []} />
      <div class="filters" role="search">
        <label for="catalog-search">Search</label>
        <input
          id="catalog-search"
          type="search"
          value={query}
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
        />
        <label for="catalog-category">Category</label>
        <select
          id="catalog-category"
          value={category}
          onChange={(e) => setCategory((e.target as HTMLSelectElement).value)}
        >
          <option value="">All categories</option>
          {categories.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      </div>
      {props.answer === undefined && props.loading ? <Loading what="the catalog" /> : null}
      <ErrorNote error={props.error} />
      <p class="muted small" role="status">
        {shown.length} of {servers.length} servers
      </p>
      <ul class="cards" aria-label="Catalog servers">
        {shown.map((server) => (
          <li class="card" key={server.id} data-catalog-server={server.id}>
            <h3>
              {server.display_name ?? server.name} <span class="muted small">({server.id})</span>
            </h3>
            {server.description ? <p class="small">{server.description}</p> : null}
            <p class="meta small">
              {server.category ? <span class="tag">{server.category}</span> : null}
              <span class="tag">{server.transport}</span>
              <code>
                {server.image}:{server.tag}
              </code>
            </p>
            {server.required_secrets.length > 0 ? (
              <p class="small">
                Needs secrets:{" "}
                {server.required_secrets.map((name) => (
                  <span key={name} class={props.secretNames.has(name) ? "tag ok" : "tag missing"}>
                    {name} {props.secretNames.has(name) ? "(set)" : "(missing)"}
                  </span>
                ))}
              </p>
            ) : null}
            {server.enabled ? (
              <p class="small">
                <PhaseBadge phase="Enabled" />
              </p>
            ) : (
              <WriteButton busy={props.busy === server.id} onClick={() => props.onEnable(server)}>
                Enable <span class="visually-hidden">{server.id}</span>
                {server.user_configurable ? "…" : ""}
              </WriteButton>
            )}
            <ErrorNote error={server.enabled ? null : props.errorFor(server.id)} />
            {props.editing === server.id && !server.enabled ? (
              <ConfigForm userId={props.userId} server={server} current={undefined} onDone={props.onDone} />
            ) : null}
          </li>
        ))}
      </ul>
    </section>
  );
}
