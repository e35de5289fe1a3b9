import { computed, signal } from "@preact/signals";
import { ApiClient, ApiFailure, describeError, publicGet } from "../api/client.js";
import { LiveEvents } from "../api/live-events.js";
import type { InfoAnswer, SessionAnswer } from "../api/types.js";

/*
 * Who is signed in. The token lives only in this tab: sessionStorage (gone when the tab closes, never sent
 * anywhere but the Authorization header) and memory; signing out forgets both.
 */

const TOKEN_KEY = "mcp-portal.token";

export interface Signed {
  client: ApiClient;
  session: SessionAnswer;
  live: LiveEvents;
}

export const signed = signal<Signed | null>(null);
export const info = signal<InfoAnswer | null>(null);
export const signInError = signal<string | null>(null);
export const restoring = signal(true);

export const isAdmin = computed(() => signed.value?.session.caller.kind === "admin");
export const readOnly = computed(() => signed.value?.session.read_only === true);
/** The user a user token belongs to (null for the admin). */
export const ownUser = computed(() => {
  const caller = signed.value?.session.caller;
  return caller?.kind === "user" ? caller.user_id : null;
});

function storage(): Storage | undefined {
  try {
    return window.sessionStorage;
  } catch {
    return undefined;
  }
}

/** Checks a token against GET /session; on success the console is signed in with it. */
export async function signIn(token: string): Promise<boolean> {
  const trimmed = token.trim();
  signInError.value = null;
  if (trimmed === "") {
    signInError.value = "Enter a token.";
    return false;
  }
  const client = new ApiClient(trimmed);
  let session: SessionAnswer;
  try {
    session = await client.get<SessionAnswer>("/session");
  } catch (error) {
    signInError.value =
      error instanceof ApiFailure && error.status === 401
        ? "The token was refused: it is not a valid admin or user token."
        : `Cannot sign in: ${describeError(error)}`;
    return false;
  }
  storage()?.setItem(TOKEN_KEY, trimmed);
  const live = new LiveEvents(trimmed);
  live.start();
  signed.value = { client, session, live };
  return true;
}

export function signOut(): void {
  storage()?.removeItem(TOKEN_KEY);
  signed.value?.live.stop();
  signed.value = null;
  signInError.value = null;
}

/** On load: sign-in methods, and the tab's token if it has one (a reload keeps the tab signed in). */
export async function restore(): Promise<void> {
  try {
    info.value = await publicGet<InfoAnswer>("/info");
  } catch {
    info.value = null;
  }
  const token = storage()?.getItem(TOKEN_KEY);
  if (token) {
    const ok = await signIn(token);
    if (!ok) {
      storage()?.removeItem(TOKEN_KEY);
      signInError.value = null;
    }
  }
  restoring.value = false;
}
