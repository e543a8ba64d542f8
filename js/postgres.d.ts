import type { AllyStorage } from "./ally_engine.js";

/** The subset of a `pg` client the adapter uses. */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
}

/** The subset of a `pg` Pool the adapter uses. */
export interface PgPoolLike extends PgClientLike {
  readonly totalCount: number;
  connect(): Promise<PgClientLike & { release(destroy?: boolean | Error): void }>;
}

export interface PostgresStorageOptions {
  /** Schema holding the tables, a lowercase SQL identifier; default `"ally"`. */
  schema?: string;
  /** Run `setupPostgres` before the first call (default false: run it once at deploy time). Refused on a client inside a transaction. */
  createSchema?: boolean;
}

/**
 * The storage contract on PostgreSQL: pass it as `new Ally({ storage })`. On a `pg` Pool, each
 * write is a transaction of its own. On a client inside the host's own transaction (after
 * `BEGIN`), the engine's writes are part of it and commit or roll back with the host's; make an
 * `Ally` for that transaction and drop it after. Failures are `AllyError`s (`STORAGE_FAILED`,
 * `INVALID_CONFIG`) with messages safe to show and the driver's error as `cause`.
 */
export function postgresStorage(target: PgPoolLike | PgClientLike, options?: PostgresStorageOptions): AllyStorage;

/** What `setupPostgres` did: the schema's version now, before, and the migrations it ran. */
export interface SetupOutcome {
  version: number;
  from: number;
  applied: number[];
}

/** The schema version this package's `setupPostgres` migrates to. */
export const SCHEMA_VERSION: number;

/**
 * Creates the schema, its tables, functions and the `ledger_entries` view if missing, runs the
 * forward migrations it has not had (recorded in `schema_version`), and updates the functions.
 * Safe to run again and concurrently; on a client inside the host's transaction it runs in a
 * savepoint of it. A schema newer than the package is `INVALID_CONFIG`.
 */
export function setupPostgres(target: PgPoolLike | PgClientLike, options?: Pick<PostgresStorageOptions, "schema">): Promise<SetupOutcome>;
