import type { AllyStorage } from "./ally_engine.js";

/** The subset of a `pg` Pool the adapter uses. */
export interface PgPoolLike {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
  connect(): Promise<{
    query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
    release(destroy?: boolean | Error): void;
  }>;
}

export interface PostgresStorageOptions {
  /** Schema holding the tables, a lowercase SQL identifier; default `"ally"`. */
  schema?: string;
  /** Run `setupPostgres` before the first call (default false: run it once at deploy time). */
  createSchema?: boolean;
}

/** The storage contract on PostgreSQL through a `pg` Pool: pass it as `new Ally({ storage })`. */
export function postgresStorage(pool: PgPoolLike, options?: PostgresStorageOptions): AllyStorage;

/** Creates the schema, its tables and its append function if missing (and updates the function); safe to run again and concurrently. */
export function setupPostgres(pool: PgPoolLike, options?: Pick<PostgresStorageOptions, "schema">): Promise<void>;
