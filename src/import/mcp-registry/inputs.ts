import type { Input, InputWithVariables } from "./schema.js";

/*
 * server.json inputs (arguments, environment variables, headers) are either fixed by the publisher (`value`,
 * with `{name}` holes filled from `variables`) or asked of the user (`default`, `isRequired`, `choices`). Our
 * catalog has no per-user templating of arguments, so resolving an input means: a fixed text when the source
 * fixes one (a variable's value or default fills its hole), else the default, else nothing.
 */

export type Resolved =
  /** A text the source fixes (`value`, holes filled). */
  | { kind: "fixed"; value: string }
  /** No fixed value; the source's default stands in for what a user would choose. */
  | { kind: "default"; value: string }
  /** The value needs the user: named variables without value or default, or secrets. */
  | { kind: "user"; needs: string[]; secret: boolean }
  /** No value, no default. */
  | { kind: "absent" };

const HOLE = /\{([^{}]+)\}/g;

export function resolveInput(input: InputWithVariables): Resolved {
  if (input.value !== undefined) {
    const needs: string[] = [];
    let secret = false;
    const value = input.value.replace(HOLE, (hole, name: string) => {
      const variable = input.variables?.[name];
      // The schema: a hole without a matching variable stays as written.
      if (variable === undefined) return hole;
      if (variable.isSecret === true) secret = true;
      const fixed = variable.value ?? variable.default;
      if (fixed === undefined || variable.isSecret === true) {
        needs.push(name);
        return hole;
      }
      return fixed;
    });
    if (needs.length > 0) return { kind: "user", needs, secret };
    return { kind: "fixed", value };
  }
  if (input.isSecret === true) return { kind: "user", needs: [], secret: true };
  if (input.default !== undefined) return { kind: "default", value: input.default };
  return { kind: "absent" };
}

/** Why a value does not fit the input's declared `format` or `choices`; undefined when it fits. */
export function formatProblem(input: Input, value: string): string | undefined {
  if (input.choices && input.choices.length > 0 && !input.choices.includes(value)) {
    return `${JSON.stringify(value)} is not one of ${input.choices.map((c) => JSON.stringify(c)).join(", ")}`;
  }
  if (input.format === "number" && !/^-?\d+(\.\d+)?$/.test(value))
    return `${JSON.stringify(value)} is not a number`;
  if (input.format === "boolean" && value !== "true" && value !== "false") {
    return `${JSON.stringify(value)} is not true or false`;
  }
  return undefined;
}
