import type { ButtonHTMLAttributes, ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { describeError, ApiFailure } from "../api/client.js";
import { readOnly } from "../state/session.js";

/** The id of the page's read-only notice; disabled write controls point at it (aria-describedby). */
export const READ_ONLY_NOTE_ID = "read-only-note";
export const READ_ONLY_REASON =
  "The API is read-only (--read-only-api): the desired state changes only through git.";

export function PhaseBadge({ phase, label }: { phase: string | null | undefined; label?: string }) {
  const text = phase ?? "Unknown";
  return (
    <span class={`badge phase-${text.replace(/[^A-Za-z]/g, "")}`}>
      {label ? <span class="visually-hidden">{label}: </span> : null}
      {text}
    </span>
  );
}

export function ProblemList({ problems, id }: { problems: readonly string[]; id?: string }) {
  if (problems.length === 0) return null;
  return (
    <ul class="problems" id={id}>
      {problems.map((line) => (
        <li key={line}>
          <code>{line}</code>
        </li>
      ))}
    </ul>
  );
}

/** An API error as people read it: the message, then its `file: path: reason` lines. */
export function ErrorNote({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  const problems = error instanceof ApiFailure ? error.problems : [];
  return (
    <div class="error" role="alert">
      <p>{describeError(error)}</p>
      <ProblemList problems={problems} />
    </div>
  );
}

type ButtonProps = ButtonHTMLAttributes<HTMLButtonElement> & { children: ComponentChildren; busy?: boolean };

/** A button that changes the desired state: disabled, and saying why, when the API is read-only. */
export function WriteButton({ children, busy, disabled, ...rest }: ButtonProps) {
  const locked = readOnly.value;
  return (
    <button
      type="button"
      {...rest}
      disabled={locked || busy === true || disabled === true}
      aria-describedby={locked ? READ_ONLY_NOTE_ID : undefined}
      title={locked ? READ_ONLY_REASON : undefined}
      aria-busy={busy === true ? "true" : undefined}
    >
      {children}
    </button>
  );
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 2000);
    } catch {
      setDone(false);
    }
  };
  return (
    <span class="copy">
      <button type="button" class="secondary" onClick={() => void copy()}>
        {label}
      </button>
      <span role="status" class="copy-status">
        {done ? "Copied" : ""}
      </span>
    </span>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** Moves focus to the element once when it mounts (panels that open on request). */
export function useFocusOnMount<T extends HTMLElement>() {
  const ref = useRef<T>(null);
  useEffect(() => ref.current?.focus(), []);
  return ref;
}

export function formatTime(value: string | null | undefined): string {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}
