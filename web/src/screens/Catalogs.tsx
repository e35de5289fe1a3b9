import { useState } from "preact/hooks";
import { ApiFailure } from "../api/client.js";
import type {
  CatalogPreviewAnswer,
  BaseCatalogAnswer,
  BaseCatalogEntry,
  CatalogWriteOutcome,
  MigrationResult,
  OverlayAnswer,
} from "../api/types.js";
import {
  ErrorNote,
  Loading,
  PhaseBadge,
  ProblemList,
  WriteButton,
  useFocusOnMount,
} from "../components/common.js";
import { CATALOG_NAME, NEW_CATALOG_TEMPLATE, jsonProblem } from "../lib/catalog-text.js";
import { useResource } from "../state/resource.js";
import { signed } from "../state/session.js";

/** Admin: base catalogs (edit, upload), overlays, and imports from other catalog formats. */
export function Catalogs() {
  const client = signed.value!.client;
  const base = useResource("base-catalogs", (s) =>
    client.get<{ catalogs: BaseCatalogEntry[] }>("/admin/catalogs/base", s),
  );
  const overlays = useResource("overlays", (s) =>
    client.get<{ overlays: OverlayAnswer[]; problems: string[] }>("/admin/catalogs/overlays", s),
  );
  const [editing, setEditing] = useState<{ name: string; isNew: boolean } | null>(null);
  return (
    <>
      <h1>Catalog Manager</h1>
      <section aria-labelledby="base-title">
        <h2 id="base-title">Base catalogs</h2>
        {base.data === undefined && base.loading ? <Loading what="base catalogs" /> : null}
        <ErrorNote error={base.error} />
        <div class="table-wrap" tabIndex={0} role="region" aria-label="Base catalogs">
          <table>
            <thead>
              <tr>
                <th scope="col">Catalog</th>
                <th scope="col">Version</th>
                <th scope="col">Servers</th>
                <th scope="col">State</th>
                <th scope="col">Edit</th>
              </tr>
            </thead>
            <tbody>
              {base.data?.catalogs.map((c) => (
                <tr key={c.name} data-catalog={c.name}>
                  <th scope="row">
                    <code>{c.file}</code>
                  </th>
                  <td>{c.version ?? "—"}</td>
                  <td>{c.servers ?? "—"}</td>
                  <td>
                    {c.valid ? <PhaseBadge phase="Valid" /> : <PhaseBadge phase="Invalid" />}
                    <ProblemList problems={c.problems ?? []} />
                  </td>
                  <td>
                    <button
                      type="button"
                      class="secondary"
                      onClick={() => setEditing({ name: c.name, isNew: false })}
                    >
                      Edit <span class="visually-hidden">{c.name}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <WriteButton onClick={() => setEditing({ name: "", isNew: true })}>New base catalog</WriteButton>
        {editing ? (
          <CatalogEditor
            key={`${editing.name}:${editing.isNew}`}
            name={editing.name}
            isNew={editing.isNew}
            onClose={(saved) => {
              setEditing(null);
              if (saved) {
                base.reload();
                overlays.reload();
              }
            }}
          />
        ) : null}
      </section>
      <Overlays answer={overlays.data} loading={overlays.loading} error={overlays.error} />
      <Import onImported={base.reload} />
    </>
  );
}

function CatalogEditor(props: { name: string; isNew: boolean; onClose: (saved: boolean) => void }) {
  const client = signed.value!.client;
  const heading = useFocusOnMount<HTMLHeadingElement>();
  const [name, setName] = useState(props.name);
  const [text, setText] = useState<string | null>(props.isNew ? NEW_CATALOG_TEMPLATE : null);
  const [problems, setProblems] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState<CatalogWriteOutcome | null>(null);
  const [preview, setPreview] = useState<CatalogPreviewAnswer | null>(null);
  const loaded = useResource(`base:${props.name}:${props.isNew}`, async (s) =>
    props.isNew ? null : client.get<BaseCatalogAnswer>(`/admin/catalogs/base/${props.name}`, s),
  );
  if (text === null && loaded.data) setText(loaded.data.text);
  const file = `catalogs/base/${name || "<name>"}.json`;

  /** The editor's text as a catalog, or the problem that stops it being one (shown like the API's). */
  const parsedText = (): { catalog: unknown } | undefined => {
    if (!CATALOG_NAME.test(name)) {
      setProblems([`${file}: $: catalog name must match ^[a-zA-Z0-9_-]{1,64}$`]);
      return undefined;
    }
    const syntax = jsonProblem(file, text ?? "");
    if (syntax !== undefined) {
      setProblems([syntax]);
      return undefined;
    }
    return { catalog: JSON.parse(text ?? "") as unknown };
  };
  const start = () => {
    setError(null);
    setProblems([]);
    setSaved(null);
    setPreview(null);
  };
  const fail = (failure: unknown) => {
    if (failure instanceof ApiFailure && failure.problems.length > 0) setProblems([...failure.problems]);
    setError(failure);
  };

  const runPreview = async () => {
    start();
    const parsed = parsedText();
    if (parsed === undefined) return;
    setBusy(true);
    try {
      setPreview(
        await client.request<CatalogPreviewAnswer>(`/admin/catalogs/base/${name}/preview`, {
          method: "POST",
          body: parsed.catalog,
        }),
      );
    } catch (failure) {
      fail(failure);
    } finally {
      setBusy(false);
    }
  };

  const save = async (event: Event) => {
    event.preventDefault();
    start();
    const parsed = parsedText();
    if (parsed === undefined) return;
    setBusy(true);
    try {
      const { catalog } = parsed;
      const outcome = props.isNew
        ? await client.request<CatalogWriteOutcome>("/admin/catalogs/base", {
            method: "POST",
            body: { name, catalog },
          })
        : await client.request<CatalogWriteOutcome>(`/admin/catalogs/base/${name}`, {
            method: "PUT",
            body: catalog,
          });
      setSaved(outcome);
    } catch (failure) {
      fail(failure);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="editor card" onSubmit={(e) => void save(e)} aria-labelledby="editor-title">
      <h3 id="editor-title" tabIndex={-1} ref={heading}>
        {props.isNew ? "New base catalog" : `Edit ${file}`}
      </h3>
      {props.isNew ? (
        <div class="field">
          <label for="catalog-name">Catalog name</label>
          <input
            id="catalog-name"
            value={name}
            pattern="^[a-zA-Z0-9_-]{1,64}$"
            required
            spellcheck={false}
            aria-describedby="catalog-name-help"
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
          <p id="catalog-name-help" class="muted small">
            Stored as <code>{file}</code>.
          </p>
        </div>
      ) : null}
      {loaded.loading && text === null ? <Loading what="the catalog" /> : null}
      <ErrorNote error={loaded.error} />
      <label for="catalog-text">Catalog JSON</label>
      <textarea
        id="catalog-text"
        rows={18}
        spellcheck={false}
        value={text ?? ""}
        aria-invalid={problems.length > 0 ? "true" : undefined}
        aria-describedby={problems.length > 0 ? "catalog-problems" : undefined}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
      />
      {problems.length > 0 ? (
        <div class="error" role="alert">
          <p>
            {error instanceof ApiFailure ? error.message : "The catalog is not valid JSON"}: nothing was
            written.
          </p>
          <ProblemList problems={problems} id="catalog-problems" />
        </div>
      ) : (
        <ErrorNote error={error} />
      )}
      {saved ? (
        <p class="ok" role="status">
          {saved.changed
            ? `Saved ${saved.file}${saved.backup ? ` (previous version kept as ${saved.backup})` : ""}; ${saved.users_enqueued} user(s) reconcile.`
            : `${saved.file} is unchanged.`}
        </p>
      ) : null}
      {preview ? <PreviewReport preview={preview} /> : null}
      <div class="actions">
        <WriteButton class="secondary" busy={busy} onClick={() => void runPreview()}>
          Preview changes
        </WriteButton>
        <WriteButton type="submit" busy={busy}>
          Save catalog
        </WriteButton>
        <button type="button" class="secondary" onClick={() => props.onClose(saved?.changed === true)}>
          Close editor
        </button>
      </div>
    </form>
  );
}

/** What saving would change, per affected user: the plan's own step descriptions. */
function PreviewReport({ preview }: { preview: CatalogPreviewAnswer }) {
  const affected = preview.users.filter((u) => u.affected);
  return (
    <div class="report" role="status" aria-labelledby="preview-title">
      <h4 id="preview-title">Preview of {preview.file}</h4>
      {affected.length === 0 ? (
        <p>Saving changes nothing for any user ({preview.users.length} planned).</p>
      ) : (
        <p>
          Saving changes {affected.length} of {preview.users.length} user(s):{" "}
          {preview.affected_users.join(", ")}.
        </p>
      )}
      <ProblemList problems={preview.problems} />
      {preview.warnings.map((w) => (
        <p class="warning" key={w}>
          {w}
        </p>
      ))}
      <ul class="preview-users">
        {affected.map((user) => (
          <li key={user.user_id} data-preview-user={user.user_id}>
            <strong>{user.user_id}</strong>
            {user.blocked_reason ? <span class="small"> nothing planned: {user.blocked_reason}</span> : null}
            {user.suspended ? (
              <span class="small"> suspended: {user.held_steps ?? 0} step(s) held back</span>
            ) : null}
            <ul class="small">
              {user.steps
                .filter((s) => s.caused_by_catalog)
                .map((s) => (
                  <li key={s.description}>{s.description}</li>
                ))}
              {user.cancelled_steps.map((s) => (
                <li key={`cancel:${s.description}`}>no longer: {s.description}</li>
              ))}
              {user.newly_blocked_servers.map((b) => (
                <li key={`blocked:${b.server_id}`}>
                  {b.server_id} would be blocked: {b.reason}
                  {b.message ? `: ${b.message}` : ""}
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Overlays(props: {
  answer: { overlays: OverlayAnswer[]; problems: string[] } | undefined;
  loading: boolean;
  error: unknown;
}) {
  return (
    <section aria-labelledby="overlays-title">
      <h2 id="overlays-title">Overlays</h2>
      {props.answer === undefined && props.loading ? <Loading what="overlays" /> : null}
      <ErrorNote error={props.error} />
      <ProblemList problems={props.answer?.problems ?? []} />
      {props.answer?.overlays.length === 0 ? <p class="muted">No overlays.</p> : null}
      <ul class="cards" aria-label="Overlays">
        {props.answer?.overlays.map((o) => (
          <li class="card" key={o.name}>
            <h3>
              <code>{o.file}</code>
            </h3>
            <p>
              {o.selected ? (
                <PhaseBadge phase={`Selected #${(o.order ?? 0) + 1}`} />
              ) : (
                <PhaseBadge phase="Not selected" />
              )}
              {o.missing ? <span class="tag missing">file missing</span> : null}
              {o.version ? <span class="small"> version {o.version}</span> : null}
            </p>
            <ProblemList problems={o.problems} />
            {o.servers && o.servers.length > 0 ? (
              <ul class="small">
                {o.servers.map((s) => (
                  <li key={s.id}>
                    <code>{s.id}</code>:{" "}
                    {s.disabled
                      ? "withdrawn"
                      : s.fields.length > 0
                        ? `changes ${s.fields.join(", ")}`
                        : "no change"}
                  </li>
                ))}
              </ul>
            ) : null}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Import({ onImported }: { onImported: () => void }) {
  const client = signed.value!.client;
  const [format, setFormat] = useState<"docker-mcp" | "mcp-registry">("docker-mcp");
  const [name, setName] = useState("docker-mcp");
  const [text, setText] = useState("");
  const [replace, setReplace] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<MigrationResult | null>(null);

  const readFile = async (input: HTMLInputElement) => {
    const file = input.files?.[0];
    if (file) setText(await file.text());
  };
  const run = async (dryRun: boolean) => {
    setBusy(true);
    setError(null);
    setResult(null);
    const query = new URLSearchParams({ format, name, dry_run: String(dryRun), replace: String(replace) });
    try {
      const answer = await client.request<MigrationResult>(`/admin/system/migration?${query.toString()}`, {
        method: "POST",
        body: text,
        contentType: format === "docker-mcp" ? "application/yaml" : "application/json",
      });
      setResult(answer);
      if (!dryRun) onImported();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="import-title">
      <h2 id="import-title">Import a catalog</h2>
      <p class="muted small">
        Docker's MCP catalog (<code>docker mcp catalog show --format yaml</code>) or the MCP registry's
        server.json, converted into a base catalog with a report per server.
      </p>
      <div class="form-grid">
        <div class="field">
          <label for="import-format">Format</label>
          <select
            id="import-format"
            value={format}
            onChange={(e) => {
              const next = (e.target as HTMLSelectElement).value as "docker-mcp" | "mcp-registry";
              if (name === format) setName(next);
              setFormat(next);
            }}
          >
            <option value="docker-mcp">Docker MCP catalog (YAML)</option>
            <option value="mcp-registry">MCP registry server.json (JSON)</option>
          </select>
        </div>
        <div class="field">
          <label for="import-name">Catalog name</label>
          <input
            id="import-name"
            value={name}
            spellcheck={false}
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </div>
        <div class="field">
          <label for="import-file">File</label>
          <input
            id="import-file"
            type="file"
            accept=".yaml,.yml,.json"
            onChange={(e) => void readFile(e.target as HTMLInputElement)}
          />
        </div>
      </div>
      <label for="import-text">Catalog to import</label>
      <textarea
        id="import-text"
        rows={8}
        spellcheck={false}
        value={text}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
      />
      <label class="inline">
        <input
          type="checkbox"
          checked={replace}
          onChange={(e) => setReplace((e.target as HTMLInputElement).checked)}
        />
        Replace an existing catalog of that name (it is backed up)
      </label>
      <div class="actions">
        <button type="button" class="secondary" disabled={busy || text === ""} onClick={() => void run(true)}>
          Dry run
        </button>
        <WriteButton busy={busy} disabled={text === ""} onClick={() => void run(false)}>
          Import
        </WriteButton>
      </div>
      <ErrorNote error={error} />
      {result ? <ImportReport result={result} /> : null}
    </section>
  );
}

function ImportReport({ result }: { result: MigrationResult }) {
  return (
    <div class="report" role="status">
      <p>
        {result.dry_run ? "Dry run: " : ""}
        {result.imported} imported, {result.skipped} skipped
        {result.stored
          ? ` — written to ${result.stored.file}`
          : result.dry_run
            ? ` — nothing written (${result.file})`
            : ""}
        .
      </p>
      <div class="table-wrap" tabIndex={0} role="region" aria-label="Import report">
        <table>
          <thead>
            <tr>
              <th scope="col">Source entry</th>
              <th scope="col">Outcome</th>
              <th scope="col">Notes and dropped fields</th>
            </tr>
          </thead>
          <tbody>
            {result.servers.map((s) => (
              <tr key={`${s.origin}:${s.name}`}>
                <th scope="row">{s.name}</th>
                <td>
                  {s.status === "imported" ? `imported as ${s.id ?? "?"}` : `skipped: ${s.reason ?? ""}`}
                </td>
                <td>
                  <ul class="small">
                    {s.notes.map((n) => (
                      <li key={n}>note: {n}</li>
                    ))}
                    {s.dropped.map((d) => (
                      <li key={d.field}>
                        dropped {d.field}: {d.reason}
                      </li>
                    ))}
                  </ul>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
