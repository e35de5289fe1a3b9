/** The process streams and environment a command uses, passed in so tests can run commands in-process. */
export interface CommandIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export type Command = (args: string[], io: CommandIo) => Promise<number>;

export class UsageError extends Error {
  readonly code = "USAGE";
}
