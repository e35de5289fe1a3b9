import { useRef, useState } from "preact/hooks";
import type { SecretsAnswer } from "../api/types.js";
import type { Resource } from "../state/resource.js";
import { signed } from "../state/session.js";
import { ErrorNote, Loading, WriteButton } from "./common.js";

const NAME_PATTERN = "^[A-Z_][A-Z0-9_]*$";

/**
 * The user's secrets by name. Values are write-only: typed into a password field, sent once, cleared, never read
 * back (the API has no way to read them).
 */
export function Secrets(props: {
  userId: string;
  answer: Resource<SecretsAnswer>;
  required: Map<string, string[]>;
}) {
  const { userId, answer } = props;
  const client = signed.value!.client;
  const [name, setName] = useState("");
  const [value, setValue] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState("");
  const [confirming, setConfirming] = useState<string | null>(null);
  const valueRef = useRef<HTMLInputElement>(null);
  const names = answer.data?.secrets ?? [];
  const missing = [...props.required.keys()].filter((n) => !names.some((s) => s.name === n));

  const save = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await client.request(`/users/${userId}/secrets`, {
        method: "POST",
        body: { secrets: { [name]: value } },
      });
      setNotice(`Secret ${name} saved.`);
      setValue("");
      setName("");
      answer.reload();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const remove = async (secret: string) => {
    setBusy(true);
    setError(null);
    try {
      await client.request(`/users/${userId}/secrets/${secret}`, { method: "DELETE" });
      setNotice(`Secret ${secret} deleted.`);
      answer.reload();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
      setConfirming(null);
    }
  };

  return (
    <section aria-labelledby="secrets-title">
      <h2 id="secrets-title">Secrets</h2>
      <p class="muted small">
        Values are encrypted at rest and never shown again; set a name again to replace its value.
      </p>
      {missing.length > 0 ? (
        <p class="warning">
          Missing for enabled servers:{" "}
          {missing.map((n) => `${n} (${props.required.get(n)?.join(", ")})`).join("; ")}
        </p>
      ) : null}
      {answer.data === undefined && answer.loading ? <Loading what="secrets" /> : null}
      <ErrorNote error={answer.error} />
      {names.length > 0 ? (
        <ul class="secret-list" aria-label="Secret names">
          {names.map((secret) => (
            <li key={secret.name}>
              <code>{secret.name}</code>
              <span class="muted small"> key {secret.key_id}</span>
              <WriteButton
                class="secondary"
                onClick={() => {
                  setName(secret.name);
                  valueRef.current?.focus();
                }}
              >
                Replace <span class="visually-hidden">{secret.name}</span>
              </WriteButton>
              {confirming === secret.name ? (
                <>
                  <WriteButton class="danger" busy={busy} onClick={() => void remove(secret.name)}>
                    Confirm delete <span class="visually-hidden">{secret.name}</span>
                  </WriteButton>
                  <button type="button" class="secondary" onClick={() => setConfirming(null)}>
                    Keep <span class="visually-hidden">{secret.name}</span>
                  </button>
                </>
              ) : (
                <WriteButton class="secondary" onClick={() => setConfirming(secret.name)}>
                  Delete <span class="visually-hidden">{secret.name}</span>
                </WriteButton>
              )}
            </li>
          ))}
        </ul>
      ) : answer.data ? (
        <p class="muted">No secrets yet.</p>
      ) : null}
      <form class="secret-form" onSubmit={(e) => void save(e)}>
        <div class="field">
          <label for="secret-name">Name</label>
          <input
            id="secret-name"
            value={name}
            pattern={NAME_PATTERN}
            title="Upper-case letters, digits and _ (like GITHUB_TOKEN)"
            spellcheck={false}
            autocomplete="off"
            required
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </div>
        <div class="field">
          <label for="secret-value">Value</label>
          <input
            id="secret-value"
            ref={valueRef}
            type="password"
            value={value}
            autocomplete="new-password"
            required
            onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          />
        </div>
        <WriteButton type="submit" busy={busy}>
          Save secret
        </WriteButton>
      </form>
      <p class="visually-hidden" role="status">
        {notice}
      </p>
      <ErrorNote error={error} />
    </section>
  );
}
