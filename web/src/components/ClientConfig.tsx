import { useState } from "preact/hooks";
import { CLIENTS, type ClientKind, TOKEN_PLACEHOLDER, clientConfig } from "../lib/mcp-clients.js";
import { isAdmin, signed } from "../state/session.js";
import { CopyButton } from "./common.js";

/** Ready-to-copy configuration for common MCP clients; the token is a placeholder unless the user asks for it. */
export function ClientConfig({ serverId, url }: { serverId: string; url: string }) {
  const [kind, setKind] = useState<ClientKind>("vscode");
  const [withToken, setWithToken] = useState(false);
  const id = `client-${serverId}`;
  const token = withToken && !isAdmin.value ? tokenOfSession() : undefined;
  const text = clientConfig(kind, serverId, url, token);
  const client = CLIENTS.find((c) => c.kind === kind)!;
  return (
    <details class="client-config">
      <summary>Client configuration</summary>
      <div class="row">
        <label for={`${id}-kind`}>Client</label>
        <select
          id={`${id}-kind`}
          value={kind}
          onChange={(e) => setKind((e.target as HTMLSelectElement).value as ClientKind)}
        >
          {CLIENTS.map((c) => (
            <option key={c.kind} value={c.kind}>
              {c.label}
            </option>
          ))}
        </select>
        {!isAdmin.value ? (
          <label class="inline">
            <input
              type="checkbox"
              checked={withToken}
              onChange={(e) => setWithToken((e.target as HTMLInputElement).checked)}
            />
            Fill in my token
          </label>
        ) : null}
      </div>
      <p class="muted small">
        For {client.where}.{" "}
        {token === undefined
          ? `Replace ${TOKEN_PLACEHOLDER} with your user token.`
          : "Keep it private: it holds your token."}
      </p>
      <pre tabIndex={0} aria-label={`${client.label} configuration for ${serverId}`}>
        <code>{text}</code>
      </pre>
      <CopyButton text={text} label={`Copy ${client.label} configuration`} />
    </details>
  );
}

function tokenOfSession(): string | undefined {
  const headers = signed.value?.client.headers() ?? {};
  return headers.authorization?.replace(/^Bearer /, "");
}
