/**
 * `record[key]` when `key` is one of the record's own properties, else undefined: a key taken from a file
 * (`constructor`, `toString`, ...) never finds what Object.prototype holds under that name.
 */
export function ownValue<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
