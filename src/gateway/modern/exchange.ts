import {
  type JsonRpcMessage,
  type JsonRpcId,
  type JsonRpcRequest,
  type JsonRpcResponse,
  classify,
} from "../jsonrpc.js";
import type { MessageSink, MuxSession } from "../stdio-mux.js";
import type { InputRequest } from "./translate.js";

/*
 * One modern request on its way through a legacy server's session, across as many HTTP round trips as the
 * server's own requests need. The server may ask the client something (an elicitation, a sampling, its roots)
 * while the request runs: a modern client cannot be asked mid-request, so the gateway answers the client's HTTP
 * request with `input_required` carrying the questions, keeps the server's request open, and when the client
 * retries with its answers, hands them to the server and waits for what comes next.
 */

export type ExchangeOutcome =
  | { kind: "final"; response: JsonRpcResponse | undefined }
  | { kind: "input"; requests: Map<string, InputRequest> };

export class Exchange {
  /** Server requests waiting for the client: input key → the server's request id. */
  readonly awaiting = new Map<string, JsonRpcId>();
  private readonly queued: JsonRpcRequest[] = [];
  private wake: (() => void) | undefined;
  private finalResponse: { response: JsonRpcResponse | undefined } | undefined;
  private inputs = 0;
  private ended = false;
  /** Where progress of the current round goes (the HTTP answer of the client's current request). */
  related: MessageSink | undefined;

  /** The sink the multiplexer routes this request's related messages to; open until the exchange ends. */
  readonly sink: MessageSink = {
    open: true,
    send: (message: JsonRpcMessage) => this.onRelated(message),
  };

  constructor(
    readonly session: MuxSession,
    readonly owner: string,
    readonly method: string,
  ) {}

  get done(): boolean {
    return this.ended;
  }

  /** The request's answer arrived (undefined: it was cancelled). */
  finish(response: JsonRpcResponse | undefined): void {
    this.finalResponse = { response };
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    (this.sink as { open: boolean }).open = false;
    this.related = undefined;
  }

  /** Waits for the answer, or for the server to ask the client something. */
  async next(): Promise<ExchangeOutcome> {
    for (;;) {
      if (this.queued.length > 0) {
        // Let requests the server sent together travel together.
        await new Promise((resolve) => setImmediate(resolve));
        const requests = new Map<string, InputRequest>();
        for (const request of this.queued.splice(0)) {
          this.inputs += 1;
          const key = `${request.method}#${this.inputs}`;
          this.awaiting.set(key, request.id);
          requests.set(key, {
            method: request.method,
            ...(request.params === undefined ? {} : { params: request.params }),
          });
        }
        return { kind: "input", requests };
      }
      if (this.finalResponse) return { kind: "final", response: this.finalResponse.response };
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }

  private onRelated(message: JsonRpcMessage): void {
    const classified = classify(message);
    if (!classified) return;
    if (classified.kind === "request") {
      this.queued.push(classified.message);
      this.wake?.();
      return;
    }
    if (classified.kind === "notification" && classified.message.method === "notifications/cancelled") {
      // The server withdrew one of its questions.
      const requestId = (classified.message.params as { requestId?: unknown } | undefined)?.requestId;
      for (const [key, id] of this.awaiting) if (id === requestId) this.awaiting.delete(key);
      return;
    }
    if (this.related?.open) this.related.send(message);
  }
}
