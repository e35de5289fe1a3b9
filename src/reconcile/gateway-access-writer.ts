import { type GatewayAccessFile, gatewayAccessPath } from "../contracts/gateway-access.js";
import { writeJsonAtomic } from "../util/atomic-write.js";

/**
 * Writes users' gateway-access.json (src/contracts/gateway-access.ts) atomically, and only when its content
 * changed; the gateway picks a change up within MCP_PORTAL_GATEWAY_POLICY_RECHECK_MS. The file goes with the
 * user's state directory once the user is gone (StatusStore.remove).
 */
export class GatewayAccessWriter {
  private readonly written = new Map<string, string>();

  constructor(private readonly stateDir: string) {}

  /** Returns true when the file was written. */
  async write(access: GatewayAccessFile): Promise<boolean> {
    const text = JSON.stringify(access);
    if (this.written.get(access.user_id) === text) return false;
    await writeJsonAtomic(gatewayAccessPath(this.stateDir, access.user_id), access);
    this.written.set(access.user_id, text);
    return true;
  }

  forget(userId: string): void {
    this.written.delete(userId);
  }
}
