/*
 * Shapes of the API answers the console reads. Where the server defines the shape, it is imported from there
 * (type-only: nothing of the server is bundled), so the console cannot drift from the API.
 */
import type { PortalEvent } from "../../../src/events/event-bus.js";
import type { MigrationResult } from "../../../src/api/migration.js";
import type { CatalogWriteOutcome } from "../../../src/api/catalog-files.js";
import type { ServerDefinition } from "../../../src/schema/catalog.js";
import type { ServerConfig } from "../../../src/schema/enabled-servers.js";
import type { UserStatus, ServerStatus, Condition } from "../../../src/contracts/status-file.js";
import type { EnabledServersAnswer } from "../../../src/api/routes/enabled-read-routes.js";
import type { InfoAnswer, SessionAnswer } from "../../../src/api/routes/session-routes.js";
import type { ContainersAnswer, LogsAnswer } from "../../../src/api/routes/runtime-routes.js";
import type { BaseCatalogAnswer, OverlayAnswer } from "../../../src/api/routes/catalog-read-routes.js";
import type { CatalogPreviewAnswer, PreviewUser } from "../../../src/api/catalog-preview.js";

export type {
  PortalEvent,
  MigrationResult,
  CatalogWriteOutcome,
  ServerDefinition,
  ServerConfig,
  UserStatus,
  ServerStatus,
  Condition,
  EnabledServersAnswer,
  InfoAnswer,
  SessionAnswer,
  ContainersAnswer,
  LogsAnswer,
  BaseCatalogAnswer,
  OverlayAnswer,
  CatalogPreviewAnswer,
  PreviewUser,
};

/** A server of the user's merged catalog, as GET users/{id}/catalog/servers lists it. */
export type CatalogServer = ServerDefinition & { enabled: boolean; url?: string };

/** GET users/{id}/catalog/servers. */
export interface CatalogServersAnswer {
  user_id: string;
  catalog_version: string;
  using_last_good: boolean;
  problems: string[];
  servers: CatalogServer[];
}

/** GET users/{id}/secrets. */
export interface SecretsAnswer {
  user_id: string;
  secrets: { name: string; key_id: string }[];
}

/** One entry of GET admin/catalogs/base. */
export interface BaseCatalogEntry {
  name: string;
  file: string;
  valid: boolean;
  version?: string;
  servers?: number;
  hash?: string;
  problems?: string[];
}

/** One entry of GET admin/users. */
export interface UserOverview {
  user_id: string;
  phase: string | null;
  observed_generation: string | null;
  servers: { total: number; running: number; pending: number; blocked: number; failed: number };
  last_reconcile: { time: string; result: string; summary: string } | null;
}
