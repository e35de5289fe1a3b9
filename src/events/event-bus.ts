import { EventEmitter } from "node:events";
import type { ResourceUsage } from "../desired/types.js";
import type { Limits } from "../config.js";

/** Live events of the original design (WebSocket events), published by the reconciler, read by the API. */
export type PortalEvent =
  | {
      event: "USER_CATALOG_UPDATED";
      data: {
        user_id: string;
        catalog_version: string;
        changes: { server_id: string; change: "added" | "removed" | "changed" }[];
        timestamp: string;
      };
    }
  | {
      event: "SERVER_STATUS_CHANGED";
      data: {
        user_id: string;
        server_id: string;
        old_status: string;
        new_status: string;
        reason?: string;
        container_id: string;
        timestamp: string;
      };
    }
  | {
      event: "RESOURCE_USAGE_UPDATE";
      data: {
        user_id: string;
        resources: { containers: number; memory_mb: number; cpu_shares: number; ports_used: number };
        limits: Limits;
        timestamp: string;
      };
    };

export type PortalEventListener = (event: PortalEvent) => void;

/** In-process fan-out; a listener that throws never affects the publisher or other listeners. */
export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(event: PortalEvent): void {
    for (const listener of this.emitter.listeners("event") as PortalEventListener[]) {
      try {
        listener(event);
      } catch {
        // A broken subscriber must not break reconciles.
      }
    }
  }

  subscribe(listener: PortalEventListener): () => void {
    this.emitter.on("event", listener);
    return () => this.emitter.off("event", listener);
  }

  get listenerCount(): number {
    return this.emitter.listenerCount("event");
  }
}

export function usageEvent(userId: string, used: ResourceUsage, limits: Limits, now: Date): PortalEvent {
  return {
    event: "RESOURCE_USAGE_UPDATE",
    data: {
      user_id: userId,
      resources: {
        containers: used.containers,
        memory_mb: used.memory_mb,
        cpu_shares: used.cpu_shares,
        ports_used: used.ports,
      },
      limits,
      timestamp: now.toISOString(),
    },
  };
}
