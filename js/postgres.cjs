"use strict";
// The PostgreSQL storage adapter for Node: the storage contract of `AllyStorage` on a `pg` Pool.
//
// Tables (in `options.schema`, default "ally"):
//   records(collection, id, version, data)         one row per record
//   record_index(collection, name, value, id)      every indexed field of every record
//   record_unique(collection, name, value, id)     the values a write declared unique
//   streams(stream, length)                        the length of every append-only stream
//   stream_entries(stream, position, data)         the entries
//
// Every write runs in one transaction. `put` locks the record's row (or relies on the primary
// key for a create) and claims unique values with INSERT … ON CONFLICT, which waits for a
// concurrent claimant to commit or roll back; `append` locks the stream's row. So two writers
// racing on one record or one stream are ordered by PostgreSQL, and the loser answers "stale".

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

function schemaName(options) {
  const schema = options?.schema ?? "ally";
  if (typeof schema !== "string" || !IDENT.test(schema)) {
    throw new TypeError(`schema must be a lowercase SQL identifier, got ${JSON.stringify(schema)}`);
  }
  return schema;
}

function checkPool(pool) {
  if (!pool || typeof pool.query !== "function" || typeof pool.connect !== "function") {
    throw new TypeError("expected a pg Pool (an object with query() and connect())");
  }
}

/** Creates the schema and tables if they are missing. Safe to run again and concurrently. */
async function setupPostgres(pool, options) {
  checkPool(pool);
  const s = schemaName(options);
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    // Serialise concurrent set-ups of the same schema (CREATE … IF NOT EXISTS can still race).
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`ally-setup:${s}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.records (
      collection text NOT NULL, id text NOT NULL, version bigint NOT NULL, data text NOT NULL,
      PRIMARY KEY (collection, id))`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.record_index (
      collection text NOT NULL, name text NOT NULL, value text NOT NULL, id text NOT NULL,
      PRIMARY KEY (collection, name, value, id))`);
    await client.query(`CREATE INDEX IF NOT EXISTS record_index_by_id ON ${s}.record_index (collection, id)`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.record_unique (
      collection text NOT NULL, name text NOT NULL, value text NOT NULL, id text NOT NULL,
      PRIMARY KEY (collection, name, value))`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.streams (
      stream text PRIMARY KEY, length bigint NOT NULL)`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.stream_entries (
      stream text NOT NULL, position bigint NOT NULL, data text NOT NULL,
      PRIMARY KEY (stream, position))`);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/** Runs `body(client)` in a transaction; rolls back on a throw or when it answers a refusal. */
async function transaction(pool, body) {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("BEGIN");
    const { commit, answer } = await body(client);
    await client.query(commit ? "COMMIT" : "ROLLBACK");
    return answer;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}

function indexesOf(rows) {
  const indexes = {};
  for (const row of rows) indexes[row.name] = row.value;
  return indexes;
}

/**
 * The storage contract on PostgreSQL. `options.schema` names the schema (default "ally");
 * `options.createSchema: true` runs `setupPostgres` before the first call.
 */
function postgresStorage(pool, options) {
  checkPool(pool);
  const s = schemaName(options);
  let ready = null;
  const setup = () => {
    if (!options?.createSchema) return Promise.resolve();
    ready ??= setupPostgres(pool, options).catch((error) => {
      ready = null;
      throw error;
    });
    return ready;
  };

  async function attachIndexes(client, collection, rows) {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const { rows: indexRows } = await client.query(
      `SELECT id, name, value FROM ${s}.record_index WHERE collection = $1 AND id = ANY($2::text[])`,
      [collection, ids],
    );
    const byId = new Map(ids.map((id) => [id, []]));
    for (const row of indexRows) byId.get(row.id)?.push(row);
    return rows.map((r) => ({ id: r.id, version: Number(r.version), data: r.data, indexes: indexesOf(byId.get(r.id)) }));
  }

  return {
    async get(collection, id) {
      await setup();
      const { rows } = await pool.query(
        `SELECT id, version, data FROM ${s}.records WHERE collection = $1 AND id = $2`,
        [collection, id],
      );
      const [found] = await attachIndexes(pool, collection, rows);
      return found ?? null;
    },

    async find(collection, query) {
      await setup();
      const limit = query.limit;
      const after = query.after ?? null;
      let rows;
      if (query.index !== undefined) {
        ({ rows } = await pool.query(
          `SELECT r.id, r.version, r.data FROM ${s}.record_index i
             JOIN ${s}.records r ON r.collection = i.collection AND r.id = i.id
            WHERE i.collection = $1 AND i.name = $2 AND i.value = $3 AND ($4::text IS NULL OR i.id > $4)
            ORDER BY i.id COLLATE "C" LIMIT $5`,
          [collection, query.index, query.value, after, limit],
        ));
      } else {
        ({ rows } = await pool.query(
          `SELECT id, version, data FROM ${s}.records
            WHERE collection = $1 AND ($2::text IS NULL OR id > $2)
            ORDER BY id COLLATE "C" LIMIT $3`,
          [collection, after, limit],
        ));
      }
      return attachIndexes(pool, collection, rows);
    },

    async put(collection, record, expectedVersion, unique) {
      await setup();
      return transaction(pool, async (client) => {
        const refuse = (answer) => ({ commit: false, answer });
        if (expectedVersion === 0) {
          const created = await client.query(
            `INSERT INTO ${s}.records (collection, id, version, data) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING`,
            [collection, record.id, record.version, record.data],
          );
          if (created.rowCount !== 1) return refuse("stale");
        } else {
          const { rows } = await client.query(
            `SELECT version FROM ${s}.records WHERE collection = $1 AND id = $2 FOR UPDATE`,
            [collection, record.id],
          );
          if (rows.length !== 1 || Number(rows[0].version) !== expectedVersion) return refuse("stale");
          await client.query(
            `UPDATE ${s}.records SET version = $3, data = $4 WHERE collection = $1 AND id = $2`,
            [collection, record.id, record.version, record.data],
          );
        }
        for (const name of unique) {
          const value = record.indexes[name];
          const claimed = await client.query(
            `INSERT INTO ${s}.record_unique (collection, name, value, id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (collection, name, value) DO UPDATE SET id = EXCLUDED.id
               WHERE ${s}.record_unique.id = EXCLUDED.id
             RETURNING id`,
            [collection, name, value, record.id],
          );
          if (claimed.rowCount !== 1) return refuse({ duplicate: name });
        }
        // Release unique values this record held and no longer holds.
        await client.query(
          `DELETE FROM ${s}.record_unique u WHERE u.collection = $1 AND u.id = $2
             AND NOT (u.name = ANY($3::text[]) AND u.value = ($4::jsonb ->> u.name))`,
          [collection, record.id, unique, JSON.stringify(record.indexes)],
        );
        await client.query(`DELETE FROM ${s}.record_index WHERE collection = $1 AND id = $2`, [collection, record.id]);
        const names = Object.keys(record.indexes);
        if (names.length > 0) {
          await client.query(
            `INSERT INTO ${s}.record_index (collection, name, value, id)
             SELECT $1, n, v, $2 FROM unnest($3::text[], $4::text[]) AS t(n, v)`,
            [collection, record.id, names, names.map((n) => record.indexes[n])],
          );
        }
        return { commit: true, answer: "written" };
      });
    },

    async append(stream, expectedLength, entries) {
      await setup();
      return transaction(pool, async (client) => {
        await client.query(
          `INSERT INTO ${s}.streams (stream, length) VALUES ($1, 0) ON CONFLICT DO NOTHING`,
          [stream],
        );
        const { rows } = await client.query(`SELECT length FROM ${s}.streams WHERE stream = $1 FOR UPDATE`, [stream]);
        if (Number(rows[0].length) !== expectedLength) return { commit: false, answer: "stale" };
        await client.query(
          `INSERT INTO ${s}.stream_entries (stream, position, data)
           SELECT $1, $2::bigint + t.i - 1, t.data FROM unnest($3::text[]) WITH ORDINALITY AS t(data, i)`,
          [stream, expectedLength, entries],
        );
        await client.query(`UPDATE ${s}.streams SET length = $2 WHERE stream = $1`, [stream, expectedLength + entries.length]);
        return { commit: true, answer: "written" };
      });
    },

    async read(stream, from, limit) {
      await setup();
      const { rows } = await pool.query(
        `SELECT data FROM ${s}.stream_entries WHERE stream = $1 AND position >= $2 ORDER BY position LIMIT $3`,
        [stream, from, limit],
      );
      return rows.map((r) => r.data);
    },
  };
}

module.exports = { postgresStorage, setupPostgres };
