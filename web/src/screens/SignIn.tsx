import { useState } from "preact/hooks";
import { info, signIn, signInError } from "../state/session.js";

/** Sign-in with a token. Identity providers (OIDC) will add their buttons to `SignInMethods` below. */
export function SignIn() {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    const ok = await signIn(token);
    setBusy(false);
    if (ok) setToken("");
  };
  return (
    <main id="main" class="sign-in">
      <h1>mcp-portal console</h1>
      <p>
        Sign in with your API token: the admin token, or a user token from{" "}
        <code>mcp-portal tokens create</code>.
      </p>
      <form onSubmit={(e) => void submit(e)} class="card" aria-describedby="token-help">
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          aria-invalid={signInError.value ? "true" : undefined}
          aria-errormessage={signInError.value ? "sign-in-error" : undefined}
          required
        />
        <p id="token-help" class="muted small">
          The token stays in this browser tab only and is forgotten when you sign out or close the tab.
        </p>
        {signInError.value ? (
          <p id="sign-in-error" class="error" role="alert">
            {signInError.value}
          </p>
        ) : null}
        <button type="submit" disabled={busy} aria-busy={busy ? "true" : undefined}>
          Sign in
        </button>
      </form>
      <SignInMethods />
    </main>
  );
}

/**
 * Sign-in methods besides tokens, as GET /api/v1/info lists them: none yet. OpenID Connect (authorization code with
 * PKCE, as a public client) renders its button here once `sign_in.oidc` names a provider.
 */
function SignInMethods() {
  return info.value?.sign_in.oidc ? null : null;
}
