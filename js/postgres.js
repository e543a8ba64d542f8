// ESM entry of the PostgreSQL adapter (Node only); the implementation is shared with require().
import adapter from "./postgres.cjs";

export const { postgresStorage, setupPostgres, SCHEMA_VERSION } = adapter;
