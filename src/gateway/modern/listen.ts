import { z } from "zod";
import type { JsonRpcId, JsonRpcNotification } from "../jsonrpc.js";
import { paramsRecord } from "../jsonrpc.js";
import { META } from "./versions.js";

/*
 * `subscriptions/listen` (pure part): which notifications a client opted in to, which of them the server can
 * send at all (its capabilities), and how a notification is stamped for the stream it travels on.
 */

export const SubscriptionFilter = z.object({
  toolsListChanged: z.boolean().optional(),
  promptsListChanged: z.boolean().optional(),
  resourcesListChanged: z.boolean().optional(),
  resourceSubscriptions: z.array(z.string()).optional(),
});
export type SubscriptionFilter = z.infer<typeof SubscriptionFilter>;

/** At most this many resource URIs in one listen filter (each becomes a `resources/subscribe` upstream). */
export const MAX_LISTEN_RESOURCE_URIS = 100;

export function parseListenFilter(params: unknown): SubscriptionFilter | undefined {
  const parsed = SubscriptionFilter.safeParse(paramsRecord(params)?.notifications);
  if (!parsed.success) return undefined;
  if ((parsed.data.resourceSubscriptions?.length ?? 0) > MAX_LISTEN_RESOURCE_URIS) return undefined;
  return parsed.data;
}

function flag(capabilities: Record<string, unknown>, kind: string, bit: string): boolean {
  return paramsRecord(capabilities[kind])?.[bit] === true;
}

/** The part of `requested` the server can honour, by what it declared at `initialize`. */
export function honoredFilter(
  requested: SubscriptionFilter,
  capabilities: Record<string, unknown>,
): SubscriptionFilter {
  const honored: SubscriptionFilter = {};
  if (requested.toolsListChanged === true && flag(capabilities, "tools", "listChanged"))
    honored.toolsListChanged = true;
  if (requested.promptsListChanged === true && flag(capabilities, "prompts", "listChanged"))
    honored.promptsListChanged = true;
  if (requested.resourcesListChanged === true && flag(capabilities, "resources", "listChanged"))
    honored.resourcesListChanged = true;
  const uris = requested.resourceSubscriptions ?? [];
  if (uris.length > 0 && flag(capabilities, "resources", "subscribe"))
    honored.resourceSubscriptions = [...new Set(uris)];
  return honored;
}

export function isEmptyFilter(filter: SubscriptionFilter): boolean {
  return Object.keys(filter).length === 0;
}

/** Whether a server notification belongs on a stream with this (honoured) filter. */
export function filterAccepts(filter: SubscriptionFilter, notification: JsonRpcNotification): boolean {
  switch (notification.method) {
    case "notifications/tools/list_changed":
      return filter.toolsListChanged === true;
    case "notifications/prompts/list_changed":
      return filter.promptsListChanged === true;
    case "notifications/resources/list_changed":
      return filter.resourcesListChanged === true;
    case "notifications/resources/updated": {
      const uri = paramsRecord(notification.params)?.uri;
      return typeof uri === "string" && (filter.resourceSubscriptions ?? []).includes(uri);
    }
    default:
      return false;
  }
}

/** The notification with the listen request's id in `_meta`, so the client knows which stream it is on. */
export function stampSubscription(
  notification: JsonRpcNotification,
  subscriptionId: JsonRpcId,
): JsonRpcNotification {
  const params = paramsRecord(notification.params) ?? {};
  return {
    jsonrpc: "2.0",
    method: notification.method,
    params: { ...params, _meta: { ...paramsRecord(params._meta), [META.subscriptionId]: subscriptionId } },
  };
}

export function acknowledgement(filter: SubscriptionFilter, subscriptionId: JsonRpcId): JsonRpcNotification {
  return stampSubscription(
    { jsonrpc: "2.0", method: "notifications/subscriptions/acknowledged", params: { notifications: filter } },
    subscriptionId,
  );
}

/**
 * A further say on what one caller may receive, beyond its filter: e.g. a per-user tool policy that hides
 * `notifications/tools/list_changed` from a user who may use none of the server's tools. Returns false to drop.
 * The default lets everything the filter accepts through.
 */
export type NotificationPolicy = (owner: string, notification: JsonRpcNotification) => boolean;

export const ALLOW_ALL_NOTIFICATIONS: NotificationPolicy = () => true;
