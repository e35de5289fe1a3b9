/**
 * Replaces every occurrence of the given secret values in free text (a container's log) with `[redacted NAME]`.
 * The logger's key-based redaction cannot see values inside text, so the values themselves are searched for, as
 * written and as they appear inside a JSON string (escaped quotes, backslashes, newlines). Longer values go
 * first so a value containing another is replaced whole. Returns the text and how many replacements were made.
 */
export function redactValues(
  text: string,
  secrets: readonly { name: string; value: string }[],
): { text: string; count: number } {
  const needles: { needle: string; name: string }[] = [];
  for (const { name, value } of secrets) {
    if (value === "") continue;
    needles.push({ needle: value, name });
    const escaped = JSON.stringify(value).slice(1, -1);
    if (escaped !== value) needles.push({ needle: escaped, name });
  }
  needles.sort((a, b) => b.needle.length - a.needle.length);
  let out = text;
  let count = 0;
  for (const { needle, name } of needles) {
    const parts = out.split(needle);
    if (parts.length === 1) continue;
    count += parts.length - 1;
    out = parts.join(`[redacted ${name}]`);
  }
  return { text: out, count };
}
