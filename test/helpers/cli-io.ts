import { Readable, Writable } from "node:stream";
import type { Command } from "../../src/commands/io.js";

/** A stream that keeps what was written to it. */
export class TextSink extends Writable {
  text = "";
  override _write(
    chunk: Buffer | string,
    _encoding: BufferEncoding,
    done: (error?: Error | null) => void,
  ): void {
    this.text += chunk.toString();
    done();
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in-process with the given environment (and stdin text, else an empty stdin); returns its exit code and output. */
export async function runCli(
  command: Command,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  stdin?: string,
): Promise<CliResult> {
  const stdout = new TextSink();
  const stderr = new TextSink();
  const input = stdin === undefined ? Readable.from([]) : Readable.from([Buffer.from(stdin)]);
  const code = await command(args, { stdin: input, stdout, stderr, env });
  return { code, stdout: stdout.text, stderr: stderr.text };
}
