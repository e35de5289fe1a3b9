/*
 * The catalog editor's text checked before it is sent: JSON syntax problems in the same `file: path: reason` form
 * the API uses for everything else. Pure, unit-tested under Node.
 */

export function jsonProblem(file: string, text: string): string | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const match = /position (\d+)/.exec(message);
    const position = match ? Number(match[1]) : text.length;
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < position && i < text.length; i++) {
      if (text.charCodeAt(i) === 10) {
        line++;
        lineStart = i + 1;
      }
    }
    const reason = message.replace(/\s*\(line \d+ column \d+\)/, "").replace(/ in JSON at position \d+/, "");
    return `${file}: line ${line}, column ${position - lineStart + 1}: invalid JSON: ${reason}`;
  }
}

export const CATALOG_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export const NEW_CATALOG_TEMPLATE = `${JSON.stringify(
  {
    version: "1.0.0",
    source: "base",
    metadata: { name: "My catalog" },
    servers: [
      {
        id: "example",
        name: "example",
        display_name: "Example",
        description: "What it does",
        category: "tools",
        image: "mcp/example",
        tag: "1.0.0",
        transport: "stdio",
      },
    ],
  },
  null,
  2,
)}\n`;
