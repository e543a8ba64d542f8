"use strict";
// The PostgreSQL storage adapter for Node: the storage contract of `AllyStorage` on a `pg` Pool,
// or on a client inside the host's own transaction (a unit of work).
//
// Tables (in `options.schema`, default "ally"), made and migrated by `setupPostgres`:
//   schema_version(version, name, applied_at)      the migrations applied, one row each
//   records(collection, id, version, data jsonb)   one row per record
//   record_index(collection, name, value, id)      every indexed field of every record
//   record_unique(collection, name, value, id)     the values a write declared unique
//   streams(stream, length)                        the length of every append-only stream
//   stream_entries(stream, position, data)         the entries
//   stream_claims(stream, key, position)           the idempotency keys claimed by appends
//   stream_requests(id, stream, request, …)        requests queued for a stream lock's holder
// the view ledger_entries (one row per wallet entry, its fields as columns, for reporting), and
// the functions: append(stream, expected, entries, keys, positions, guard collection, guard
// id, guard version), the whole `append`; lock_stream, the stream lock; combine, a request
// queued and the wait for the lock; append_held, the append of the lock's holder.
//
// Every write runs in one transaction. `put` locks the record's row (or relies on the primary
// key for a create) and claims unique values with INSERT … ON CONFLICT, which waits for a
// concurrent claimant to commit or roll back. `append` is one call of the server-side function,
// so one round trip in the statement's own transaction: it locks the stream's row, and only an
// appender holding that lock writes a stream's entries or claims. So two writers racing on one
// record or one stream are ordered by PostgreSQL, and the loser answers "stale" (an append's
// loser with the entries it missed).

const { AllyError } = require("./ally_engine.cjs");

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

function schemaName(options) {
  const schema = options?.schema ?? "ally";
  if (typeof schema !== "string" || !IDENT.test(schema)) {
    throw AllyError.invalidConfig("schema", `expected a lowercase SQL identifier, got ${typeof schema === "string" ? JSON.stringify(schema) : typeof schema}`);
  }
  return schema;
}

/**
 * What the adapter runs on: a pg Pool (each write its own transaction), or a client inside the
 * host's transaction (every call a savepoint in it, so the engine's writes commit or roll back
 * with the host's).
 */
function targetOf(target) {
  if (target && typeof target.query === "function" && typeof target.connect === "function" && typeof target.totalCount === "number") {
    return { pool: target, client: null };
  }
  if (target && typeof target.query === "function") return { pool: null, client: target };
  throw AllyError.invalidConfig("pool", "expected a pg Pool, or a pg client inside the host's transaction");
}

// Driver failures as messages safe to show a client: no SQL, no relation or host names, no
// values. The driver's error stays the AllyError's `cause`.
const NETWORK = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "EPIPE"]);
const SQLSTATES = {
  "28P01": "the database refused the credentials",
  28000: "the database refused the credentials",
  "3D000": "the database does not exist",
  "3F000": "the schema is not set up (run setupPostgres)",
  "42P01": "the schema is not set up (run setupPostgres)",
  42883: "the schema is not set up (run setupPostgres)",
  40001: "a concurrent transaction got in the way; try again",
  "40P01": "a concurrent transaction got in the way; try again",
  "55P03": "a lock wait timed out",
  57014: "the statement was cancelled",
  "57P01": "the database is shutting down",
  "57P02": "the database is shutting down",
  "57P03": "the database is starting up",
  53300: "the database has no connection free",
  "25P01": "the client is not inside a transaction (BEGIN first)",
  "25P02": "the host's transaction is aborted: roll it back",
};
function safeReason(error) {
  const code = typeof error?.code === "string" ? error.code : "";
  if (NETWORK.has(code)) return "the database could not be reached";
  if (code in SQLSTATES) return SQLSTATES[code];
  if (code.startsWith("08")) return "the connection to the database failed";
  if (/^[0-9A-Z]{5}$/.test(code)) return `the database failed (SQLSTATE ${code})`;
  if (/timeout exceeded when trying to connect/.test(String(error?.message))) return "no database connection was free in time";
  if (/Connection terminated|not queryable/.test(String(error?.message))) return "the connection to the database was lost";
  return "the database call failed";
}
const failed = (operation, error) => (error instanceof AllyError ? error : AllyError.storageFailed(operation, safeReason(error), error));

// The whole `append` as one server-side call, run in the caller's statement transaction. Every
// appender of a stream first locks the stream's row, so the length it compares, the claims it
// looks up and the entries it hands back cannot change before it commits; and each statement
// after the lock sees what the previous holder committed (READ COMMITTED takes a snapshot per
// statement of a volatile function). The guard's record is read without a lock: a write of it
// that commits after that read is ordered after this append, which then was right to go ahead.
// The answer is the contract's own, as JSON: "written", "changed", {"claimed": key} or
// {"stale": entries}, the entries from p_expected on (none when the stream is shorter), at most
// STALE_TAIL of them, so the loser of a race catches up without a read of its own.
// Only a stream's first append creates its row: a stale append at an unknown stream leaves
// nothing, and a refused first append leaves the row at length 0, which reads as no stream.
const STALE_TAIL = 500;
/** The stream's entries from position `from` (an SQL expression) on, at most STALE_TAIL, as JSON. */
const tailQuery = (s, from) => `(SELECT COALESCE(json_agg(e.data ORDER BY e.position), '[]')
    FROM (SELECT position, data FROM ${s}.stream_entries
           WHERE stream = p_stream AND position >= ${from} ORDER BY position LIMIT ${STALE_TAIL}) e)`;
const appendFunction = (s) => `CREATE OR REPLACE FUNCTION ${s}.append(
    p_stream text, p_expected bigint, p_entries text[], p_keys text[], p_positions bigint[],
    p_guard_collection text, p_guard_id text, p_guard_version bigint)
  RETURNS json LANGUAGE plpgsql AS $fn$
DECLARE
  held bigint;
  taken text;
BEGIN
  SELECT length INTO held FROM ${s}.streams WHERE stream = p_stream FOR UPDATE;
  IF NOT FOUND THEN
    IF p_expected <> 0 THEN
      RETURN '{"stale": []}';
    END IF;
    -- A concurrent first appender makes this wait for its commit and then insert nothing.
    INSERT INTO ${s}.streams (stream, length) VALUES (p_stream, 0) ON CONFLICT DO NOTHING;
    SELECT length INTO held FROM ${s}.streams WHERE stream = p_stream FOR UPDATE;
  END IF;
  IF held <> p_expected THEN
    RETURN json_build_object('stale', ${tailQuery(s, "p_expected")});
  END IF;
  IF p_guard_collection IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM ${s}.records
        WHERE collection = p_guard_collection AND id = p_guard_id AND version = p_guard_version) THEN
    RETURN '"changed"';
  END IF;
  IF cardinality(p_keys) > 0 THEN
    -- The first key, in the order given, that the stream holds already or that came before.
    SELECT k.key INTO taken
      FROM (SELECT t.key, t.n, row_number() OVER (PARTITION BY t.key ORDER BY t.n) AS nth
              FROM unnest(p_keys) WITH ORDINALITY AS t(key, n)) k
     WHERE k.nth > 1
        OR EXISTS (SELECT 1 FROM ${s}.stream_claims c WHERE c.stream = p_stream AND c.key = k.key)
     ORDER BY k.n
     LIMIT 1;
    IF FOUND THEN
      RETURN json_build_object('claimed', taken);
    END IF;
    INSERT INTO ${s}.stream_claims (stream, key, position)
      SELECT p_stream, t.key, t.position FROM unnest(p_keys, p_positions) AS t(key, position);
  END IF;
  INSERT INTO ${s}.stream_entries (stream, position, data)
    SELECT p_stream, p_expected + t.n - 1, t.data FROM unnest(p_entries) WITH ORDINALITY AS t(data, n);
  UPDATE ${s}.streams SET length = p_expected + cardinality(p_entries) WHERE stream = p_stream;
  RETURN '"written"';
END
$fn$`;

// The stream lock the engine takes while other processes keep appending to the same wallet: a
// session advisory lock on the stream (two keys: the schema's and the stream's), taken with
// lock_timeout so that a holder that takes too long (or waits on this process's own pool) does
// not stall the others for ever. It is released by the holder's written append, after its commit,
// in the same round trip (so the next holder reads what it wrote), or by `unlock`; a lost
// connection releases it with its session.
const LOCK_WAIT_MS = 2000;
// How many lock waits a queued request that a holder has taken sits through before it gives up:
// its outcome is then unknown until that holder ends (retry with the same idempotency key).
const TAKEN_WAITS = 5;
const QUEUED_MAX = 64;
// How many times a waiter tries to lead between waits before it queues for the lock instead:
// once. Trying again and again spins: the other waiters' brief shared holds refuse a try even
// while no holder leads (measured: about ten turns per request under 8 clients on one wallet).
const LEAD_TURNS = 1;
// A queued request older than this is one whose requester is gone: a lead drops it.
const QUEUED_KEEP = "10 minutes";
const lockKeys = (s, stream) => `hashtext('ally:${s}'), hashtext(${stream})`;
const lockFunction = (s) => `CREATE OR REPLACE FUNCTION ${s}.lock_stream(p_stream text, p_from bigint)
  RETURNS json LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM set_config('lock_timeout', '${LOCK_WAIT_MS}ms', true);
  PERFORM pg_advisory_lock(${lockKeys(s, "p_stream")});
  PERFORM set_config('lock_timeout', '0', true);
  IF NOT EXISTS (SELECT 1 FROM ${s}.streams WHERE stream = p_stream) THEN
    PERFORM pg_advisory_unlock(${lockKeys(s, "p_stream")});
    RETURN NULL;
  END IF;
  RETURN ${tailQuery(s, "p_from")};
END
$fn$`;

// Requests queued for the stream lock's holder (combine): unlogged, since a request lives only
// as long as its requester's wait, and a crash of the server ends those waits. `taken`: a lead
// handed it over; only that lead's written append answers it, in its commit.
const requestsTable = (s) => `CREATE UNLOGGED TABLE IF NOT EXISTS ${s}.stream_requests (
  id bigserial PRIMARY KEY, stream text NOT NULL, request text NOT NULL,
  taken boolean NOT NULL DEFAULT false, answer text, queued_at timestamptz NOT NULL DEFAULT now())`;

// combine: the request is queued and committed (so that the current holder's successor sees it),
// and its requester holds a transaction lock on it while it waits: a lead takes only requests
// whose requester still waits (a cancelled call or a lost session releases that lock, and its
// request is dropped, never settled for a requester that has gone). Then the caller leads if the
// stream's lock is free (it reads its own request back first: a holder may have settled it);
// else it waits for the holder to end in shared mode, beside the other waiters, so that all the
// requests one holder settled learn their answers when it commits. A request not answered then
// (queued after that holder took the requests) queues for the lock itself, and leads unless a
// holder before it answered it. A lead takes the requests no one has taken, atomically against a requester
// withdrawing its own. Only the waits for the stream's lock are bounded by lock_timeout: past it
// a request no holder has taken is withdrawn ("withdrawn": nothing queued, nothing held); a taken
// one waits on, for at most TAKEN_WAITS waits, and then leaves the queue, so that its holder's
// append fails as a whole rather than settle it for a requester that has given up.
const requestKey = (s, id) => `hashtext('ally-request:${s}'), (${id} % 2147483647)::int`;
const combineProcedure = (s) => `CREATE OR REPLACE PROCEDURE ${s}.combine(
    p_stream text, p_from bigint, p_request text, INOUT outcome text DEFAULT NULL)
  LANGUAGE plpgsql AS $fn$
DECLARE
  mine bigint;
  got text;
  queued json;
  waits int := 0;
  turns int := 0;
BEGIN
  INSERT INTO ${s}.stream_requests (stream, request) VALUES (p_stream, p_request) RETURNING id INTO mine;
  COMMIT;
  PERFORM set_config('lock_timeout', '0', true);
  PERFORM pg_advisory_xact_lock(${requestKey(s, "mine")});
  LOOP
    turns := turns + 1;
    -- Free: lead. Woken once without an answer, wait for it in the queue instead (the other
    -- waiters, reading their answers at that instant, would refuse every try).
    EXIT WHEN pg_try_advisory_lock(${lockKeys(s, "p_stream")});
    BEGIN
      PERFORM set_config('lock_timeout', '${LOCK_WAIT_MS}ms', true);
      IF turns > ${LEAD_TURNS} THEN
        PERFORM pg_advisory_lock(${lockKeys(s, "p_stream")});
        PERFORM set_config('lock_timeout', '0', true);
        EXIT;
      END IF;
      PERFORM pg_advisory_lock_shared(${lockKeys(s, "p_stream")});
      PERFORM pg_advisory_unlock_shared(${lockKeys(s, "p_stream")});
      PERFORM set_config('lock_timeout', '0', true);
    EXCEPTION WHEN lock_not_available THEN
      -- A lock granted as the timeout fired is held all the same (PostgreSQL still raises the
      -- timeout, and a session lock outlives the subtransaction): let it go.
      PERFORM CASE l.mode WHEN 'ExclusiveLock' THEN pg_advisory_unlock(${lockKeys(s, "p_stream")})
                          ELSE pg_advisory_unlock_shared(${lockKeys(s, "p_stream")}) END
         FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted AND l.objsubid = 2
          AND l.classid = hashtext('ally:${s}')::oid AND l.objid = hashtext(p_stream)::oid;
      -- A lead taking the request at this instant holds its row: the delete waits for that
      -- lead's statement, however long.
      PERFORM set_config('lock_timeout', '0', true);
      DELETE FROM ${s}.stream_requests WHERE id = mine AND NOT taken;
      IF FOUND THEN
        outcome := '"withdrawn"';
        RETURN;
      END IF;
      waits := waits + 1;
      IF waits >= ${TAKEN_WAITS} THEN
        DELETE FROM ${s}.stream_requests WHERE id = mine RETURNING answer INTO got;
        IF got IS NOT NULL THEN
          outcome := json_build_object('answered', got)::text;
          RETURN;
        END IF;
        RAISE EXCEPTION 'a holder of the lock on % took a queued request and did not answer it in time: it is withdrawn', p_stream;
      END IF;
    END;
    SELECT answer INTO got FROM ${s}.stream_requests WHERE id = mine;
    IF got IS NOT NULL THEN
      DELETE FROM ${s}.stream_requests WHERE id = mine;
      outcome := json_build_object('answered', got)::text;
      RETURN;
    END IF;
  END LOOP;
  DELETE FROM ${s}.stream_requests WHERE id = mine RETURNING answer INTO got;
  IF got IS NOT NULL THEN
    PERFORM pg_advisory_unlock(${lockKeys(s, "p_stream")});
    outcome := json_build_object('answered', got)::text;
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM ${s}.streams WHERE stream = p_stream) THEN
    PERFORM pg_advisory_unlock(${lockKeys(s, "p_stream")});
    outcome := '"withdrawn"';
    RETURN;
  END IF;
  IF mine % 1024 = 0 THEN
    DELETE FROM ${s}.stream_requests WHERE id < mine - 1024 AND queued_at < now() - interval '${QUEUED_KEEP}';
  END IF;
  -- An index scan, which marks the entries of taken requests dead as it passes them (a bitmap
  -- scan would visit them all again on every lead until vacuum).
  PERFORM set_config('enable_bitmapscan', 'off', true);
  -- Requests whose requester no longer waits (its lock on them is free) leave the queue.
  DELETE FROM ${s}.stream_requests
   WHERE id IN (SELECT id FROM ${s}.stream_requests WHERE stream = p_stream AND NOT taken
                 ORDER BY id LIMIT ${QUEUED_MAX} FOR UPDATE SKIP LOCKED)
     AND pg_try_advisory_xact_lock_shared(${requestKey(s, "id")});
  WITH t AS (
    UPDATE ${s}.stream_requests SET taken = true
     WHERE id IN (SELECT id FROM ${s}.stream_requests WHERE stream = p_stream AND NOT taken
                   ORDER BY id LIMIT ${QUEUED_MAX} FOR UPDATE SKIP LOCKED)
    RETURNING id, request)
  SELECT COALESCE(json_agg(json_build_object('id', t.id, 'request', t.request) ORDER BY t.id), '[]')
    INTO queued FROM t;
  outcome := json_build_object('tail', ${tailQuery(s, "p_from")}, 'queued', queued)::text;
END
$fn$`;

// The holder's append: the append, and when written, the answers of its lead, the commit and the
// release of the lock, in one call. An append that was not written keeps the lock (and writes no
// answer).
const appendHeldProcedure = (s) => `CREATE OR REPLACE PROCEDURE ${s}.append_held(
    p_stream text, p_expected bigint, p_entries text[], p_keys text[], p_positions bigint[],
    p_guard_collection text, p_guard_id text, p_guard_version bigint, p_ids bigint[], p_answers text[],
    INOUT outcome text DEFAULT NULL)
  LANGUAGE plpgsql AS $fn$
DECLARE
  answered bigint;
BEGIN
  outcome := ${s}.append(p_stream, p_expected, p_entries, p_keys, p_positions,
                         p_guard_collection, p_guard_id, p_guard_version)::text;
  IF outcome = '"written"' THEN
    IF cardinality(p_ids) > 0 THEN
      UPDATE ${s}.stream_requests r SET answer = a.answer
        FROM unnest(p_ids, p_answers) AS a(id, answer)
       WHERE r.id = a.id AND r.stream = p_stream AND r.taken AND r.answer IS NULL
         -- Its requester still waits (holds its lock on it): one that gave up after the lead
         -- took its request (cancelled, its session lost, past its waits) is not settled.
         AND NOT pg_try_advisory_xact_lock_shared(${requestKey(s, "r.id")});
      GET DIAGNOSTICS answered = ROW_COUNT;
      IF answered <> cardinality(p_ids) THEN
        -- A requester gave up (its request left the queue): nothing of this batch is written.
        RAISE EXCEPTION 'a queued request on % was withdrawn before its answer', p_stream;
      END IF;
    END IF;
    COMMIT;
    PERFORM pg_advisory_unlock(${lockKeys(s, "p_stream")});
  END IF;
END
$fn$`;

// The schema's forward migrations, in order. Each runs once per schema, in the set-up's
// transaction, and is recorded in schema_version; a schema made before versions (its tables
// exist, schema_version does not) starts at 0, and migration 1 only adds what it lacks.
const MIGRATIONS = [
  {
    version: 1,
    name: "records, indexes, unique values, streams, entries and claims",
    async up(q, s) {
      await q(`CREATE TABLE IF NOT EXISTS ${s}.records (
        collection text NOT NULL, id text NOT NULL, version bigint NOT NULL, data text NOT NULL,
        PRIMARY KEY (collection, id))`);
      await q(`CREATE TABLE IF NOT EXISTS ${s}.record_index (
        collection text NOT NULL, name text NOT NULL, value text NOT NULL, id text NOT NULL,
        PRIMARY KEY (collection, name, value, id))`);
      await q(`CREATE INDEX IF NOT EXISTS record_index_by_id ON ${s}.record_index (collection, id)`);
      await q(`CREATE TABLE IF NOT EXISTS ${s}.record_unique (
        collection text NOT NULL, name text NOT NULL, value text NOT NULL, id text NOT NULL,
        PRIMARY KEY (collection, name, value))`);
      await q(`CREATE TABLE IF NOT EXISTS ${s}.streams (stream text PRIMARY KEY, length bigint NOT NULL)`);
      await q(`CREATE TABLE IF NOT EXISTS ${s}.stream_entries (
        stream text NOT NULL, position bigint NOT NULL, data text NOT NULL,
        PRIMARY KEY (stream, position))`);
      const claimsExisted = (await q("SELECT to_regclass($1) IS NOT NULL AS found", [`${s}.stream_claims`])).rows[0].found;
      await q(`CREATE TABLE IF NOT EXISTS ${s}.stream_claims (
        stream text NOT NULL, key text NOT NULL, position bigint NOT NULL,
        PRIMARY KEY (stream, key))`);
      if (!claimsExisted) {
        // Entries written before keys were claimed with the append: claim their keys now, once,
        // so that a key from then is still answered instead of spent again.
        await q(`INSERT INTO ${s}.stream_claims (stream, key, position)
          SELECT stream, data::json ->> 'idempotencyKey', position FROM ${s}.stream_entries
           WHERE data::json ->> 'idempotencyKey' IS NOT NULL
          ON CONFLICT DO NOTHING`);
      }
    },
  },
  {
    version: 2,
    name: "records hold their data as jsonb",
    async up(q, s) {
      // Rewrites the table under an exclusive lock: a large one wants a maintenance window,
      // and instances of an older package stopped first (they read data as text).
      await q("SAVEPOINT ally_jsonb");
      try {
        await q(`ALTER TABLE ${s}.records ALTER COLUMN data TYPE jsonb USING data::jsonb`);
      } catch (error) {
        await q("ROLLBACK TO SAVEPOINT ally_jsonb");
        if (error?.code !== "22P05") throw error;
        // jsonb holds no U+0000 (the engine stores none; an older version may have): the
        // records that do are named, for an operator to mend before running it again.
        const held = await q(`SELECT collection, id FROM ${s}.records WHERE strpos(data, '\\u0000') > 0 LIMIT 5`);
        const named = held.rows.map((r) => `${r.collection}/${r.id}`).join(", ");
        throw AllyError.invalidConfig("schema", `records hold the character U+0000, which jsonb cannot: ${named || "(see SQLSTATE 22P05)"}; remove it from them and run setupPostgres again`);
      }
    },
  },
  {
    version: 3,
    name: "the ledger_entries view for reporting",
    async up(q, s) {
      await q(`DROP VIEW IF EXISTS ${s}.ledger_entries`);
      await q(ledgerView(s));
    },
  },
];

/** The latest schema version `setupPostgres` migrates to. */
const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

// The view for reporting: one row per wallet entry, its fields as columns.
// The view for reporting: one row per wallet entry, its fields as columns. Filter a wallet by
// `stream = 'ledger:' || id` to use the entries' primary key (`wallet_id` is the same id, read
// from the entry). `at` is the entry's time (null for a year PostgreSQL does not hold).
const ledgerView = (s) => `CREATE VIEW ${s}.ledger_entries AS
  SELECT e.stream, e.position, d.entry ->> 'walletId' AS wallet_id,
         (d.entry ->> 'sequence')::bigint AS sequence, d.entry ->> 'kind' AS kind,
         (d.entry ->> 'amount')::bigint AS amount, (d.entry ->> 'balanceAfter')::bigint AS balance_after,
         d.entry ->> 'memo' AS memo, d.entry ->> 'idempotencyKey' AS idempotency_key,
         CASE WHEN d.entry ->> 'at' ~ '^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-'
              THEN (d.entry ->> 'at')::timestamptz END AS at,
         d.entry
    FROM ${s}.stream_entries e CROSS JOIN LATERAL (SELECT e.data::jsonb AS entry) d
   WHERE e.stream LIKE 'ledger:%'`;

/** The set-up itself, on a client in a transaction: migrations, then functions and the view. */
async function setUp(q, s) {
  // Serialise concurrent set-ups of the same schema (CREATE … IF NOT EXISTS can still race).
  await q("SELECT pg_advisory_xact_lock(hashtext($1))", [`ally-setup:${s}`]);
  await q(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  await q(`CREATE TABLE IF NOT EXISTS ${s}.schema_version (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  const current = (await q(`SELECT COALESCE(max(version), 0) AS version FROM ${s}.schema_version`)).rows[0].version;
  if (current > SCHEMA_VERSION) {
    throw AllyError.invalidConfig("schema", `schema ${s} is at version ${current}, newer than this package's ${SCHEMA_VERSION}: upgrade the package`);
  }
  const applied = [];
  for (const migration of MIGRATIONS.filter((m) => m.version > current)) {
    await migration.up(q, s);
    await q(`INSERT INTO ${s}.schema_version (version, name) VALUES ($1, $2)`, [migration.version, migration.name]);
    applied.push(migration.version);
  }
  // Earlier signatures of append: CREATE OR REPLACE would add an overload beside them.
  for (const signature of [
    "text, bigint, text[], text[], bigint[]",
    "text, bigint, text[], text[], bigint[], text, text, bigint, boolean",
  ]) {
    await q(`DROP FUNCTION IF EXISTS ${s}.append(${signature})`);
  }
  await q(appendFunction(s));
  // An earlier lock_stream answered SETOF text or text[]: CREATE OR REPLACE cannot change that.
  await q(`DROP FUNCTION IF EXISTS ${s}.lock_stream(text, bigint)`);
  await q(lockFunction(s));
  await q(requestsTable(s));
  // The requests waiting for a lead, in order. A request lives for a round trip or two, so the
  // table churns: the index holds only the waiting ones (a lead's scan steps over the entries
  // of taken ones, marking them dead as it goes), and vacuum runs after every few hundred.
  await q(`DROP INDEX IF EXISTS ${s}.stream_requests_by_stream`);
  await q(`CREATE INDEX IF NOT EXISTS stream_requests_waiting ON ${s}.stream_requests (stream, id) WHERE NOT taken`);
  await q(`ALTER TABLE ${s}.stream_requests SET (autovacuum_vacuum_threshold = 500, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_insert_threshold = 500, autovacuum_vacuum_insert_scale_factor = 0)`);
  await q(combineProcedure(s));
  await q(appendHeldProcedure(s));
  return { version: SCHEMA_VERSION, from: current, applied };
}

/**
 * Creates the schema, its tables, functions and view if they are missing, runs the migrations
 * it has not had, and brings the functions up to date. Safe to run again and concurrently. On a
 * pg Pool it runs in a transaction of its own; on a client inside the host's transaction, in a
 * savepoint of that one (it commits with the host's). Resolves to `{ version, from, applied }`:
 * the schema's version now, before, and the migrations this call ran.
 */
async function setupPostgres(target, options) {
  const { pool, client: hostClient } = targetOf(target);
  const s = schemaName(options);
  let client;
  try {
    client = hostClient ?? (await pool.connect());
  } catch (error) {
    throw failed("connect", error);
  }
  const q = (text, values) => client.query(text, values);
  try {
    await q(hostClient ? "SAVEPOINT ally_setup" : "BEGIN");
    const outcome = await setUp(q, s);
    await q(hostClient ? "RELEASE SAVEPOINT ally_setup" : "COMMIT");
    return outcome;
  } catch (error) {
    await q(hostClient ? "ROLLBACK TO SAVEPOINT ally_setup" : "ROLLBACK").catch(() => {});
    throw failed("setup", error);
  } finally {
    if (!hostClient) client.release();
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

// SQLSTATE of a lock wait that ran past lock_timeout.
const LOCK_NOT_AVAILABLE = "55P03";

/**
 * SQL literals for a simple query: text dollar-quoted (taken as written, whatever it holds), or
 * escaped by the client when it holds anything like the quote's tag; integers checked as such.
 */
function literals(client) {
  return {
    text: (v) => {
      if (v === null) return "NULL";
      const t = String(v);
      return t.includes("$q") ? client.escapeLiteral(t) : `$q$${t}$q$`;
    },
    integer: (v) => {
      if (v === null) return "NULL";
      if (!Number.isSafeInteger(v)) throw new TypeError(`expected an integer, got ${v}`);
      return String(v);
    },
  };
}

/** The lock, as one simple query (the lock is the session's: no transaction is left open). */
function lockStreamText(s, client, stream, from) {
  const { text, integer } = literals(client);
  return `SELECT ${s}.lock_stream(${text(stream)}, ${integer(from)})::text AS tail`;
}

/** A request queued for the lock's holder, and the wait for the lock, as one call. */
function combineText(s, client, stream, from, request) {
  const { text, integer } = literals(client);
  return `CALL ${s}.combine(${text(stream)}, ${integer(from)}, ${text(request)})`;
}

/**
 * The append of a lock's holder, with the answers of its lead: one call (a procedure, which
 * commits and then releases the lock). A procedure that commits is called in a simple query,
 * which takes no parameters, so the values are written as literals, each escaped by the client,
 * the integers checked as such.
 */
function heldAppendText(s, client, values, answers) {
  const [stream, expected, entries, keys, positions, collection, id, version] = values;
  const { text, integer } = literals(client);
  const texts = (list) => `ARRAY[${list.map(text).join(",")}]::text[]`;
  const integers = (list) => `ARRAY[${list.map(integer).join(",")}]::bigint[]`;
  return `CALL ${s}.append_held(${text(stream)}, ${integer(expected)}, ${texts(entries)}, ${texts(keys)}, ${integers(positions)}, ${text(collection)}, ${text(id)}, ${integer(version)}, ${integers(answers.map((a) => a.id))}, ${texts(answers.map((a) => a.answer))})`;
}

/** The release of a held lock, as one simple query. */
function unlockText(s, client, stream) {
  return `SELECT pg_advisory_unlock(${lockKeys(s, literals(client).text(stream))})`;
}

const recordOf = (row) => ({ id: row.id, version: Number(row.version), data: row.data, indexes: row.indexes });

/**
 * Runs `body(client)` in a savepoint of the host's transaction: released when it commits,
 * rolled back to when it refuses or throws, so that a refused or failed call leaves the host's
 * transaction as it was (and not aborted).
 */
async function savepoint(client, body, transaction) {
  await client.query("SAVEPOINT ally_call");
  try {
    // The transaction's start time (no id is assigned, so read-only units and standbys are
    // fine): a storage made for one transaction refuses to work in the next, whose Ally would
    // remember what may have been rolled back.
    const { rows } = await client.query("SELECT now()::text AS started");
    const started = rows[0]?.started;
    transaction.started ??= started;
    if (transaction.started !== started) {
      // Through the engine every storage failure is STORAGE_FAILED; the reason says it is the
      // host's own mistake, not one to retry.
      throw AllyError.storageFailed("connect", "this storage was made for a transaction that has ended: make a new Ally (and storage) for each transaction; retrying will not help");
    }
    const { commit, answer } = await body(client);
    if (!commit) await client.query("ROLLBACK TO SAVEPOINT ally_call");
    await client.query("RELEASE SAVEPOINT ally_call");
    return answer;
  } catch (error) {
    await client
      .query("ROLLBACK TO SAVEPOINT ally_call")
      .then(() => client.query("RELEASE SAVEPOINT ally_call"))
      .catch(() => {});
    throw error;
  }
}

/**
 * The storage contract on PostgreSQL. `target` is a pg Pool, or a client inside the host's own
 * transaction: then every write is part of that transaction and commits or rolls back with it
 * (make an `Ally` for the transaction and drop it after: what it remembers of wallets is only
 * true once the host commits, and the storage refuses to work in a later transaction). Await
 * its calls before the host's own queries on the client: one sent while an engine call is
 * inside its savepoint would be rolled back with that call if it is refused. `options.schema` names the schema (default "ally");
 * `options.createSchema: true` runs `setupPostgres` before the first call. Every failure is an
 * `AllyError` (`STORAGE_FAILED`, `INVALID_CONFIG`) whose message is safe to show, the driver's
 * error as its `cause`.
 */
function postgresStorage(target, options) {
  const { pool: poolTarget, client: unit } = targetOf(target);
  const s = schemaName(options);
  if (unit && options?.createSchema) {
    // Its locks would be held until the host commits, queueing every transaction behind it.
    throw AllyError.invalidConfig("createSchema", "run setupPostgres at deploy time, not inside a unit of work");
  }
  // Calls on a unit of work run one at a time, each in a savepoint of the host's transaction
  // (two savepoints open at once on one connection would nest, not run side by side).
  let queue = Promise.resolve();
  const hostTransaction = { started: null };
  const inUnit = (body) => {
    const run = queue.then(() => savepoint(unit, body, hostTransaction));
    queue = run.catch(() => {});
    return run;
  };
  const pool = poolTarget ?? {
    query: (...args) => inUnit(async (client) => ({ commit: true, answer: await client.query(...args) })),
    options: { max: 1 },
  };
  let ready = null;
  const setup = () => {
    if (!options?.createSchema) return Promise.resolve();
    ready ??= setupPostgres(target, options).catch((error) => {
      ready = null;
      throw error;
    });
    return ready;
  };
  const write = (body) => (unit ? inUnit(body) : transaction(poolTarget, body));
  // Every method answers AllyErrors: a driver's failure becomes STORAGE_FAILED naming the call.
  const guarded = (operation, method) => async (...args) => {
    try {
      return await method(...args);
    } catch (error) {
      throw failed(operation, error);
    }
  };

  // Records with their indexes in one statement, so in one snapshot. `rows` selects at most
  // `limit` rows of `records` (collection, id, version, data): the indexes are gathered for those
  // alone, then the page is ordered again by id, since the join need not keep its order.
  const withIndexes = (rows) => `
    SELECT p.id, p.version, p.data::text AS data,
           COALESCE((SELECT json_object_agg(i.name, i.value) FROM ${s}.record_index i
                      WHERE i.collection = p.collection AND i.id = p.id), '{}'::json) AS indexes
      FROM (${rows}) p
     ORDER BY p.id COLLATE "C"`;

  // The statements of every provision and read, prepared once per connection (named
  // statements): PostgreSQL then skips parsing and planning them on each call.
  const prepared = (name, text) => (values) => pool.query({ name: `ally:${s}:${name}`, text, values });
  const getRecord = prepared(
    "get",
    withIndexes(`SELECT collection, id, version, data FROM ${s}.records WHERE collection = $1 AND id = $2`),
  );
  // As text, parsed here: a pool's own parser for json (pg.types.setTypeParser) cannot reshape it.
  const appendEntries = prepared(
    "append",
    `SELECT ${s}.append($1::text, $2::bigint, $3::text[], $4::text[], $5::bigint[], $6::text, $7::text, $8::bigint)::text AS answer`,
  );
  const findClaimed = prepared("findClaim", `SELECT position FROM ${s}.stream_claims WHERE stream = $1 AND key = $2`);
  const readEntries = prepared(
    "read",
    `SELECT data FROM ${s}.stream_entries WHERE stream = $1 AND position >= $2 ORDER BY position LIMIT $3`,
  );

  // Stream locks: the connection each held lock lives on, by stream; and, per stream, the
  // in-process queue, so that one process holds at most one connection per locked stream.
  // When taking one more would leave the pool without a free connection (a pool of one, or many
  // hot wallets at once), `lock` answers null and the request goes on without it.
  const lockConnections = new Map();
  const lockQueues = new Map();
  const poolMax = pool.options?.max ?? 10;
  // Locks held or being taken by this process: each keeps a connection, and at least one must
  // stay free for the holders' other calls (reading a reseller, writing a checkpoint).
  let lockConnectionsInUse = 0;
  const inQueue = async (stream) => {
    const before = lockQueues.get(stream) ?? Promise.resolve();
    let leave;
    const mine = new Promise((resolve) => (leave = resolve));
    const tail = before.then(() => mine);
    lockQueues.set(stream, tail);
    await before;
    return () => {
      if (lockQueues.get(stream) === tail) lockQueues.delete(stream);
      leave();
    };
  };

  // Takes the stream's lock (or learns that it need not) on a connection of its own: `text`
  // builds the one statement that waits for it, `read` says from its rows whether the lock is
  // held now and what to answer. A held lock keeps its connection until `unlock`.
  // A lock_timeout error is an answer only from `lock` (its one bounded wait is for the lock):
  // `combine` answers its own timeouts, and any error of its call leaves it unknown whether the
  // session holds the lock, so the connection is dropped (and the lock with its session).
  const hold = async (stream, text, read, { timeoutIsNone = false } = {}) => {
    // A unit of work has one connection, the host's: its calls go on without stream locks.
    if (unit || lockConnectionsInUse + 1 >= poolMax) return null;
    await setup();
    lockConnectionsInUse += 1;
    const leave = await inQueue(stream);
    let client;
    const giveUp = (error) => {
      client?.release(error);
      lockConnectionsInUse -= 1;
      leave();
    };
    try {
      client = await pool.connect();
      const { rows } = await client.query(text(client));
      const { held, answer } = read(rows);
      if (held) lockConnections.set(stream, { client, leave, released: false });
      else giveUp();
      return answer;
    } catch (error) {
      if (timeoutIsNone && error?.code === LOCK_NOT_AVAILABLE) {
        // Waited past LOCK_WAIT_MS: go on without the lock. A lock granted as the timeout fired
        // is held all the same (PostgreSQL still raises the timeout): the connection is dropped,
        // and such a lock with its session, rather than go back to the pool holding it.
        giveUp(error);
        return null;
      }
      // A connection that failed mid-wait is dropped, and whatever its session held with it.
      giveUp(error ?? new Error("lock failed"));
      throw error;
    }
  };

  const storage = {
    async get(collection, id) {
      await setup();
      const { rows } = await getRecord([collection, id]);
      return rows.length === 1 ? recordOf(rows[0]) : null;
    },

    async find(collection, query) {
      await setup();
      const limit = query.limit;
      const after = query.after ?? null;
      let rows;
      if (query.index !== undefined) {
        ({ rows } = await pool.query(
          withIndexes(`SELECT r.collection, r.id, r.version, r.data FROM ${s}.record_index i
             JOIN ${s}.records r ON r.collection = i.collection AND r.id = i.id
            WHERE i.collection = $1 AND i.name = $2 AND i.value = $3 AND ($4::text IS NULL OR i.id > $4)
            ORDER BY i.id COLLATE "C" LIMIT $5`),
          [collection, query.index, query.value, after, limit],
        ));
      } else {
        ({ rows } = await pool.query(
          withIndexes(`SELECT collection, id, version, data FROM ${s}.records
            WHERE collection = $1 AND ($2::text IS NULL OR id > $2)
            ORDER BY id COLLATE "C" LIMIT $3`),
          [collection, after, limit],
        ));
      }
      return rows.map(recordOf);
    },

    async put(collection, record, expectedVersion, unique) {
      await setup();
      return write(async (client) => {
        const refuse = (answer) => ({ commit: false, answer });
        if (expectedVersion === 0) {
          const created = await client.query(
            `INSERT INTO ${s}.records (collection, id, version, data) VALUES ($1, $2, $3, $4::jsonb)
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
            `UPDATE ${s}.records SET version = $3, data = $4::jsonb WHERE collection = $1 AND id = $2`,
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

    async append(stream, expectedLength, entries, claims, guard, holder, answers) {
      await setup();
      const values = [
        stream,
        expectedLength,
        entries,
        claims.map((c) => c.key),
        claims.map((c) => c.position),
        guard?.collection ?? null,
        guard?.id ?? null,
        guard?.version ?? null,
      ];
      // Only the holder's own append goes on the lock's connection: another instance sharing
      // this storage appends through the pool (and waits for the stream's row).
      const held = holder === true ? lockConnections.get(stream) : undefined;
      if (held === undefined || held.released) {
        const { rows } = await appendEntries(values);
        return JSON.parse(rows[0].answer);
      }
      // The append, the answers and the commit, then the release, in one round trip: the next
      // holder is granted the lock as soon as this is durable. A failed call leaves the lock
      // held: `unlock` releases it.
      const { rows } = await held.client.query(heldAppendText(s, held.client, values, answers ?? []));
      const answer = JSON.parse(rows[0].outcome);
      if (answer === "written") {
        // The server released the lock after its commit: the connection goes back to the pool
        // now (a holder's next calls, a checkpoint's write, need one), not at `unlock`.
        held.released = true;
        held.client.release();
        lockConnectionsInUse -= 1;
      }
      return answer;
    },

    lock(stream, from) {
      return hold(stream, (client) => lockStreamText(s, client, stream, from), (rows) => {
        const tail = rows[0].tail === null ? null : JSON.parse(rows[0].tail);
        return { held: tail !== null, answer: tail };
      }, { timeoutIsNone: true });
    },

    combine(stream, from, request) {
      return hold(stream, (client) => combineText(s, client, stream, from, request), (rows) => {
        const outcome = JSON.parse(rows[0].outcome);
        if (outcome === "withdrawn") return { held: false, answer: null };
        if (typeof outcome.answered === "string") return { held: false, answer: { answered: outcome.answered } };
        return { held: true, answer: { tail: outcome.tail, queued: outcome.queued.map((q) => ({ id: Number(q.id), request: q.request })) } };
      });
    },

    async unlock(stream) {
      const held = lockConnections.get(stream);
      if (!held) return;
      lockConnections.delete(stream);
      if (held.released) {
        held.leave();
        return;
      }
      try {
        await held.client.query(unlockText(s, held.client, stream));
        held.client.release();
      } catch (error) {
        // The session goes with the connection, and the lock with the session.
        held.client.release(error);
        throw error;
      } finally {
        lockConnectionsInUse -= 1;
        held.leave();
      }
    },

    async findClaim(stream, key) {
      await setup();
      const { rows } = await findClaimed([stream, key]);
      return rows.length === 1 ? Number(rows[0].position) : null;
    },

    async read(stream, from, limit) {
      await setup();
      const { rows } = await readEntries([stream, from, limit]);
      return rows.map((r) => r.data);
    },
  };
  for (const [name, method] of Object.entries(storage)) storage[name] = guarded(name, method);
  return storage;
}

module.exports = { postgresStorage, setupPostgres, SCHEMA_VERSION };
