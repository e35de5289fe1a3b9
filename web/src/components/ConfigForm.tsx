import { useState } from "preact/hooks";
import { ApiFailure } from "../api/client.js";
import type { CatalogServer, ServerConfig } from "../api/types.js";
import { type FieldKey, groupProblems } from "../lib/field-problems.js";
import { signed } from "../state/session.js";
import { ErrorNote, ProblemList, WriteButton, useFocusOnMount } from "./common.js";

interface EnvRow {
  key: string;
  value: string;
}
interface VolumeRow {
  host_path: string;
  container_path: string;
  mode: "rw" | "ro";
}

/**
 * A user_configurable server's per-server config (environment keys and volumes), generated from the catalog entry.
 * The API validates; its problems appear next to the field they name, word for word.
 */
export function ConfigForm(props: {
  userId: string;
  server: CatalogServer;
  current: ServerConfig | undefined;
  onDone: (changed: boolean) => void;
}) {
  const { userId, server, current } = props;
  const client = signed.value!.client;
  const heading = useFocusOnMount<HTMLHeadingElement>();
  const [env, setEnv] = useState<EnvRow[]>(() => initialEnv(server, current));
  const [volumes, setVolumes] = useState<VolumeRow[]>(() =>
    (current?.volumes ?? []).map((v) => ({
      host_path: v.host_path,
      container_path: v.container_path,
      mode: v.mode ?? "rw",
    })),
  );
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const problems =
    error instanceof ApiFailure ? groupProblems(error.problems) : new Map<FieldKey, string[]>();
  const base = `cfg-${server.id}`;

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const environment = Object.fromEntries(
      env.filter((r) => r.key !== "" && r.value !== "").map((r) => [r.key, r.value]),
    );
    const body: ServerConfig = {
      ...(Object.keys(environment).length > 0 ? { environment } : {}),
      ...(volumes.length > 0 ? { volumes } : {}),
    };
    try {
      const answer = await client.request<{ changed: boolean }>(
        `/users/${userId}/servers/${server.id}/enable`,
        { method: "POST", body },
      );
      props.onDone(answer.changed);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  const setEnvRow = (index: number, patch: Partial<EnvRow>) =>
    setEnv(env.map((row, i) => (i === index ? { ...row, ...patch } : row)));
  const setVolume = (index: number, patch: Partial<VolumeRow>) =>
    setVolumes(volumes.map((row, i) => (i === index ? { ...row, ...patch } : row)));
  const formProblems = problems.get("form") ?? [];

  return (
    <form class="config-form" onSubmit={(e) => void submit(e)} aria-labelledby={`${base}-title`}>
      <h4 id={`${base}-title`} tabIndex={-1} ref={heading}>
        Configure {server.display_name ?? server.name}
      </h4>
      <fieldset>
        <legend>Environment</legend>
        {env.length === 0 ? <p class="muted small">No environment keys.</p> : null}
        {env.map((row, i) => {
          const lines = problems.get(`env:${row.key}`) ?? [];
          const id = `${base}-env-${i}`;
          const fixedKey = server.environment !== undefined && row.key in server.environment;
          return (
            <div class="field-row" key={i}>
              {fixedKey ? (
                <label for={`${id}-value`} class="env-key">
                  <code>{row.key}</code>
                </label>
              ) : (
                <>
                  <label for={`${id}-key`} class="visually-hidden">
                    Name of environment variable {i + 1}
                  </label>
                  <input
                    id={`${id}-key`}
                    value={row.key}
                    placeholder="NAME"
                    spellcheck={false}
                    onInput={(e) => setEnvRow(i, { key: (e.target as HTMLInputElement).value })}
                  />
                  <label for={`${id}-value`} class="visually-hidden">
                    Value of {row.key || `environment variable ${i + 1}`}
                  </label>
                </>
              )}
              <input
                id={`${id}-value`}
                value={row.value}
                placeholder={server.environment?.[row.key] ?? ""}
                spellcheck={false}
                aria-invalid={lines.length > 0 ? "true" : undefined}
                aria-describedby={lines.length > 0 ? `${id}-problems` : undefined}
                onInput={(e) => setEnvRow(i, { value: (e.target as HTMLInputElement).value })}
              />
              {!fixedKey ? (
                <button type="button" class="secondary" onClick={() => setEnv(env.filter((_, j) => j !== i))}>
                  Remove <span class="visually-hidden">{row.key || `variable ${i + 1}`}</span>
                </button>
              ) : null}
              <ProblemList problems={lines} id={`${id}-problems`} />
            </div>
          );
        })}
        <button type="button" class="secondary" onClick={() => setEnv([...env, { key: "", value: "" }])}>
          Add environment variable
        </button>
      </fieldset>
      <fieldset>
        <legend>Volumes</legend>
        {volumes.length === 0 ? <p class="muted small">No extra volumes.</p> : null}
        {volumes.map((row, i) => {
          const id = `${base}-vol-${i}`;
          const lines = [
            ...(problems.get(`volume:${i}`) ?? []),
            ...(problems.get(`volume:${i}:host_path`) ?? []),
            ...(problems.get(`volume:${i}:container_path`) ?? []),
            ...(problems.get(`volume:${i}:mode`) ?? []),
          ];
          return (
            <div class="field-row" key={i}>
              <label for={`${id}-host`}>Host path {i + 1}</label>
              <input
                id={`${id}-host`}
                value={row.host_path}
                placeholder="{USER_DATA}/files"
                aria-invalid={lines.length > 0 ? "true" : undefined}
                aria-describedby={lines.length > 0 ? `${id}-problems` : undefined}
                onInput={(e) => setVolume(i, { host_path: (e.target as HTMLInputElement).value })}
              />
              <label for={`${id}-container`}>Container path {i + 1}</label>
              <input
                id={`${id}-container`}
                value={row.container_path}
                placeholder="/files"
                onInput={(e) => setVolume(i, { container_path: (e.target as HTMLInputElement).value })}
              />
              <label for={`${id}-mode`}>Mode {i + 1}</label>
              <select
                id={`${id}-mode`}
                value={row.mode}
                onChange={(e) => setVolume(i, { mode: (e.target as HTMLSelectElement).value as "rw" | "ro" })}
              >
                <option value="rw">read-write</option>
                <option value="ro">read-only</option>
              </select>
              <button
                type="button"
                class="secondary"
                onClick={() => setVolumes(volumes.filter((_, j) => j !== i))}
              >
                Remove volume {i + 1}
              </button>
              <ProblemList problems={lines} id={`${id}-problems`} />
            </div>
          );
        })}
        <button
          type="button"
          class="secondary"
          onClick={() => setVolumes([...volumes, { host_path: "", container_path: "", mode: "rw" }])}
        >
          Add volume
        </button>
      </fieldset>
      {error instanceof ApiFailure ? (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <ProblemList problems={formProblems} />
        </div>
      ) : (
        <ErrorNote error={error} />
      )}
      <div class="actions">
        <WriteButton type="submit" busy={busy}>
          Save and enable
        </WriteButton>
        <button type="button" class="secondary" onClick={() => props.onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function initialEnv(server: CatalogServer, current: ServerConfig | undefined): EnvRow[] {
  const rows: EnvRow[] = Object.keys(server.environment ?? {}).map((key) => ({
    key,
    value: current?.environment?.[key] ?? "",
  }));
  for (const [key, value] of Object.entries(current?.environment ?? {})) {
    if (!rows.some((row) => row.key === key)) rows.push({ key, value });
  }
  return rows;
}
