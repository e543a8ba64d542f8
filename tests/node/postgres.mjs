// The PostgreSQL adapter against a real server: the storage conformance suite, the wallet
// operations end to end, and concurrent provisions from several processes at one wallet.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import { Ally, AllyError, validateLedger } from "ally-engine";
import { postgresStorage, setupPostgres } from "ally-engine/postgres";
import { Harness, equal, ok, fails, report } from "../js/harness.mjs";
import { conformance } from "../js/storage-conformance.mjs";
import { startPostgres } from "./pg-cluster.mjs";

const run = promisify(execFile);
const cluster = await startPostgres();
const pool = new pg.Pool({ ...cluster, max: 20 });
const h = new Harness("postgres");
let schemas = 0;
const fresh = () => postgresStorage(pool, { schema: `t${++schemas}`, createSchema: true });

conformance(h, "postgresStorage()", fresh);

h.test("setupPostgres is idempotent and safe to run concurrently", async () => {
  await Promise.all([setupPostgres(pool, { schema: "twice" }), setupPostgres(pool, { schema: "twice" })]);
  await setupPostgres(pool, { schema: "twice" });
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'twice'");
  equal(rows[0].n, 9, "tables and the ledger_entries view");
  const versions = await pool.query("SELECT version, name FROM twice.schema_version ORDER BY version");
  equal(versions.rows.map((r) => r.version), [1, 2, 3], "each migration recorded once");
  equal(await setupPostgres(pool, { schema: "twice" }), { version: 3, from: 3, applied: [] }, "nothing left to run");
});

h.test("setupPostgres migrates a schema made before versions: records become jsonb, and read as before", async () => {
  const schema = "preversions";
  await pool.query(`CREATE SCHEMA ${schema}`);
  await pool.query(`CREATE TABLE ${schema}.records (collection text NOT NULL, id text NOT NULL, version bigint NOT NULL, data text NOT NULL, PRIMARY KEY (collection, id))`);
  await pool.query(`INSERT INTO ${schema}.records VALUES ('resellers', 'rs_1', 3, $1)`, [JSON.stringify({ id: "rs_1", tier: "gold", metadata: { "ü": [1, 2.5] } })]);
  const outcome = await setupPostgres(pool, { schema });
  equal(outcome, { version: 3, from: 0, applied: [1, 2, 3] }, "every migration ran");
  const type = await pool.query(`SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'records' AND column_name = 'data'`, [schema]);
  equal(type.rows[0].data_type, "jsonb", "data is jsonb");
  const got = await postgresStorage(pool, { schema }).get("resellers", "rs_1");
  equal([got.version, JSON.parse(got.data)], [3, { id: "rs_1", tier: "gold", metadata: { "ü": [1, 2.5] } }], "the record reads as the same JSON value");
  const sql = await pool.query(`SELECT data ->> 'tier' AS tier FROM ${schema}.records WHERE id = 'rs_1'`);
  equal(sql.rows[0].tier, "gold", "and plain SQL reads its fields");
  const nul = "prenul";
  await pool.query(`CREATE SCHEMA ${nul}`);
  await pool.query(`CREATE TABLE ${nul}.records (collection text NOT NULL, id text NOT NULL, version bigint NOT NULL, data text NOT NULL, PRIMARY KEY (collection, id))`);
  await pool.query(`INSERT INTO ${nul}.records VALUES ('resellers', 'rs_2', 1, $1)`, ['{"note":"a\\u0000b"}']);
  const held = await fails(AllyError, "INVALID_CONFIG", () => setupPostgres(pool, { schema: nul }), "a record jsonb cannot hold");
  ok(held.message.includes("resellers/rs_2"), held.message);
  await pool.query(`INSERT INTO ${schema}.schema_version (version, name) VALUES (99, 'from a newer package')`);
  const newer = await fails(AllyError, "INVALID_CONFIG", () => setupPostgres(pool, { schema }), "a schema newer than the package");
  ok(newer.message.includes("version 99"), newer.message);
});

h.test("a unit of work: the engine's writes commit or roll back with the host's own transaction", async () => {
  const schema = `t${++schemas}`;
  await setupPostgres(pool, { schema });
  const setupAlly = new Ally({ storage: postgresStorage(pool, { schema }) });
  const r = await setupAlly.make().user(1).company("Unit Corp").create();
  await setupAlly.addCredits(r, 1000);
  await pool.query(`CREATE TABLE ${schema}.orders (id serial PRIMARY KEY, reseller text NOT NULL, cost int NOT NULL)`);
  const order = async (cost, { fail = false } = {}) => {
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      await client.query(`INSERT INTO ${schema}.orders (reseller, cost) VALUES ($1, $2)`, [r.id, cost]);
      // One engine for the transaction: what it remembers is only true once the host commits.
      const ally = new Ally({ storage: postgresStorage(client, { schema }) });
      const entry = await ally.provision(r.id, cost, `order of ${cost}`);
      // A refused call inside the transaction leaves it usable: a decision refused before any
      // write, and a write the storage refused (a duplicate user: its savepoint rolled back).
      await fails(AllyError, "INSUFFICIENT_CREDITS", () => ally.provision(r.id, 1e9), "a refusal inside the unit");
      await fails(AllyError, "ALREADY_EXISTS", () => ally.make().user(1).company("Again").create(), "a refused write inside the unit");
      if (fail) throw new Error("the host's own step failed");
      await client.query("COMMIT");
      return entry;
    } catch (error) {
      await client.query("ROLLBACK");
      throw error;
    } finally {
      client.release();
    }
  };
  equal((await order(300)).balanceAfter, 700, "committed with the order");
  let thrown;
  try {
    await order(200, { fail: true });
  } catch (error) {
    thrown = error;
  }
  equal(thrown?.message, "the host's own step failed", "the host's failure");
  const fresh = new Ally({ storage: postgresStorage(pool, { schema }) });
  equal(await fresh.balance(r), 700, "the rolled-back provision is gone with its order");
  const orders = await pool.query(`SELECT cost FROM ${schema}.orders ORDER BY id`);
  equal(orders.rows.map((o) => o.cost), [300], "and the order with it");
  equal(validateLedger(await fresh.ledger(r), { walletId: r.id }).ok, true, "the ledger validates");
  const view = await pool.query(`SELECT kind, amount, balance_after, memo FROM ${schema}.ledger_entries WHERE stream = 'ledger:' || $1 ORDER BY sequence`, [r.id]);
  const recent = await pool.query(`SELECT count(*)::int AS n FROM ${schema}.ledger_entries WHERE wallet_id = $1 AND at > now() - interval '1 day'`, [r.id]);
  equal(recent.rows[0].n, 2, "at is a timestamp");
  equal(view.rows, [{ kind: "credit", amount: "1000", balance_after: "1000", memo: null }, { kind: "debit", amount: "300", balance_after: "700", memo: "order of 300" }], "the ledger_entries view for reporting");
  // A storage made for one transaction refuses the next on the same client.
  const reused = await pool.connect();
  try {
    await reused.query("BEGIN");
    const once = new Ally({ storage: postgresStorage(reused, { schema }) });
    equal(await once.balance(r.id), 700, "in its transaction");
    await reused.query("COMMIT");
    await reused.query("BEGIN");
    const stale = await fails(AllyError, "STORAGE_FAILED", () => once.balance(r.id), "in the next transaction");
    ok(/made for a transaction that has ended/.test(stale.message), stale.message);
    await reused.query("ROLLBACK");
  } finally {
    reused.release();
  }
  await fails(AllyError, "INVALID_CONFIG", () => postgresStorage(reused, { schema, createSchema: true }), "no schema set-up inside a unit of work");
  // Text with U+0000 is refused before it reaches jsonb.
  await fails(AllyError, "INVALID_INPUT", () => setupAlly.updateMetadata(r, "note", "a\u0000b"), "a NUL character");
  await fails(AllyError, "INVALID_INPUT", () => setupAlly.updateMetadata(r, "n\u0000te", "x"), "a NUL in a key");
  await fails(AllyError, "INVALID_INPUT", () => setupAlly.balance("rs_\u0000"), "a NUL in an id");
  const bare = new pg.Client(cluster);
  await bare.connect();
  try {
    const outside = await fails(AllyError, "STORAGE_FAILED", () => new Ally({ storage: postgresStorage(bare, { schema }) }).balance(r.id), "a client outside a transaction");
    ok(outside.message.includes("BEGIN first"), outside.message);
  } finally {
    await bare.end();
  }
});

h.test("the package README's PostgreSQL examples run as written", async () => {
  const readme = readFileSync(fileURLToPath(new URL("../../js/README.md", import.meta.url)), "utf8");
  const section = readme.slice(readme.indexOf("## PostgreSQL and SMTP"), readme.indexOf("## Observability"));
  const blocks = [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  equal(blocks.length, 2, "two examples");
  // What the examples take from their surroundings: the database, a reseller with credit, an
  // order id, the host's own table.
  const seed = new Ally({ storage: postgresStorage(pool) });
  await setupPostgres(pool);
  const reseller = await seed.make().user(4242).company("Readme Corp").create();
  await seed.addCredits(reseller, 1000);
  await pool.query("CREATE TABLE IF NOT EXISTS orders (reseller text NOT NULL, sku text NOT NULL)");
  const prelude = `const resellerId = ${JSON.stringify(reseller.id)}; const orderId = "order-1";\n`;
  // Inside the repository, so that its imports resolve to the package and pg as an app's would.
  const folder = fileURLToPath(new URL("../js/.tmp/", import.meta.url));
  mkdirSync(folder, { recursive: true });
  const file = join(folder, "readme-postgres.mjs");
  writeFileSync(file, `${blocks[0]}\n${prelude}${blocks[1]}\nawait pool.end();\n`);
  process.env.DATABASE_URL = `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${cluster.database}`;
  await import(pathToFileURL(file).href);
  equal(await seed.balance(reseller), 800, "the debit was committed with the order");
  equal((await pool.query("SELECT sku FROM orders WHERE reseller = $1", [reseller.id])).rows, [{ sku: "pro" }], "and the order row");
});

h.test("adapter failures are AllyErrors with safe messages and the driver's error as cause", async () => {
  const bad = await fails(AllyError, "INVALID_CONFIG", () => postgresStorage(pool, { schema: "Bad-Name" }), "a bad schema name");
  equal([bad.details.key, bad.httpStatus], ["schema", 500], "names the option");
  await fails(AllyError, "INVALID_CONFIG", () => postgresStorage({}), "no pool");
  await fails(AllyError, "INVALID_CONFIG", () => setupPostgres(null), "no pool to set up");
  const dead = new pg.Pool({ host: "127.0.0.1", port: 1, user: "x", database: "x", connectionTimeoutMillis: 2000 });
  try {
    const down = await fails(AllyError, "STORAGE_FAILED", () => setupPostgres(dead, { schema: "never" }), "setup on a dead database");
    equal([down.details.operation, down.details.reason, down.httpStatus], ["connect", "the database could not be reached", 503], "safe");
    ok(down.cause && down.cause.code === "ECONNREFUSED", `the driver's error as cause: ${down.cause?.code}`);
    const viaEngine = await fails(AllyError, "STORAGE_FAILED", () => new Ally({ storage: postgresStorage(dead) }).balance("rs_x"), "a call through the engine");
    equal(viaEngine.message, "storage get failed: the database could not be reached", "the engine says what the adapter said");
  } finally {
    await dead.end();
  }
  const unset = await fails(AllyError, "STORAGE_FAILED", () => new Ally({ storage: postgresStorage(pool, { schema: "never_setup" }) }).balance("rs_x"));
  equal(unset.message, "storage get failed: the schema is not set up (run setupPostgres)", "no relation name, no SQL");
  ok(!unset.message.includes("never_setup") && !unset.message.includes("relation"), unset.message);
});

h.test("setupPostgres replaces the append function of a schema made before the guard", async () => {
  const schema = "upgraded";
  await pool.query(`CREATE SCHEMA ${schema}`);
  await pool.query(`CREATE FUNCTION ${schema}.append(p_stream text, p_expected bigint, p_entries text[], p_keys text[], p_positions bigint[])
    RETURNS text LANGUAGE sql AS $$ SELECT 'written' $$`);
  await setupPostgres(pool, { schema });
  const { rows } = await pool.query(
    `SELECT pg_get_function_identity_arguments(p.oid) AS args FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1 AND p.proname = 'append'`,
    [schema],
  );
  equal(rows.length, 1, "one append function");
  ok(rows[0].args.includes("p_guard_version bigint"), `the guarded one: ${rows[0].args}`);
  equal(await postgresStorage(pool, { schema }).append("s", 1, ["x"], []), { stale: [] }, "and it answers");
});

h.test("setupPostgres claims the keys of entries written before claims, once", async () => {
  const schema = "preclaims";
  await pool.query(`CREATE SCHEMA ${schema}`);
  await pool.query(`CREATE TABLE ${schema}.stream_entries (stream text NOT NULL, position bigint NOT NULL, data text NOT NULL, PRIMARY KEY (stream, position))`);
  const entry = (key) => JSON.stringify({ id: "le_1", idempotencyKey: key });
  await pool.query(`INSERT INTO ${schema}.stream_entries VALUES ('ledger:a', 0, $1), ('ledger:a', 1, $2), ('ledger:b', 0, $3)`, [entry("order-42"), entry(null), entry("order-42")]);
  await setupPostgres(pool, { schema });
  const storage = postgresStorage(pool, { schema });
  equal([await storage.findClaim("ledger:a", "order-42"), await storage.findClaim("ledger:b", "order-42")], [0, 0], "claimed where they sit");
  equal(await storage.findClaim("ledger:a", "null"), null, "no key, no claim");
  await pool.query(`DELETE FROM ${schema}.stream_claims`);
  await setupPostgres(pool, { schema });
  equal(await storage.findClaim("ledger:a", "order-42"), null, "only when the claims table is new");
});

h.test("8 concurrent appends at one length: one is written, the others are stale with its entries", async () => {
  const s = fresh();
  await s.put("things", { id: "a", version: 1, data: "{}", indexes: {} }, 0, []);
  for (const [stream, length] of [["new", 0], ["old", 3]]) {
    if (length > 0) equal(await s.append(stream, 0, ["p0", "p1", "p2"], []), "written", "the stream's first entries");
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        s.append(stream, length, [`c${i}`], [{ key: `k${i}`, position: length }], { collection: "things", id: "a", version: 1 }),
      ),
    );
    const winners = answers.flatMap((answer, i) => (answer === "written" ? [i] : []));
    equal(winners.length, 1, `${stream}: one written, in ${JSON.stringify(answers)}`);
    const tails = answers.filter((answer) => answer !== "written");
    equal(tails, Array(7).fill({ stale: [`c${winners[0]}`] }), `${stream}: the others`);
    equal(await s.read(stream, length, 10), [`c${winners[0]}`], `${stream}: the winner's entry alone`);
  }
});

h.test("the stream lock: one holder at a time across pools, the tail after the last holder's append, ended by the holder's written append", async () => {
  const schema = `t${++schemas}`;
  const a = postgresStorage(pool, { schema, createSchema: true });
  const otherPool = new pg.Pool({ ...cluster, max: 3 });
  const b = postgresStorage(otherPool, { schema });
  const pause = () => new Promise((r) => setTimeout(r, 200));
  let other;
  try {
    equal(await a.append("w", 0, ["e1"], []), "written", "first entry");
    equal(await a.lock("w", 0), ["e1"], "the lock answers the entries from 0");
    const bLock = pending(b.lock("w", 1));
    await pause();
    equal(bLock.done, false, "a second holder waits");
    equal(await a.append("w", 1, ["e2"], [], null, true), "written", "the holder appends");
    while (!bLock.done) await pause();
    equal(bLock.value, ["e2"], "the next holder sees the append it waited for");
    await a.unlock("w");
    // Another instance appends without the lock: the conditional append orders it.
    equal(await a.append("w", 2, ["e3"], [], null, false), "written", "a non-holder's append");
    // A holder's append that is not written keeps the hold.
    equal(await b.append("w", 2, ["x"], [], null, true), { stale: ["e3"] }, "stale under the lock");
    const aLock = pending(a.lock("w", 3));
    await pause();
    equal(aLock.done, false, "still held after a stale append");
    await b.unlock("w");
    while (!aLock.done) await pause();
    equal(aLock.value, [], "held after unlock, and nothing of the stale append written");
    await a.unlock("w");
    equal(await a.read("w", 0, 10), ["e1", "e2", "e3"], "the stream");
    // A holder that keeps the lock past the wait: the next one goes on without it.
    equal(await a.lock("w", 3), [], "held");
    const began = Date.now();
    equal(await b.lock("w", 3), null, "no lock past the wait");
    ok(Date.now() - began >= 1900, `waited ${Date.now() - began} ms`);
    await a.unlock("w");
    const single = postgresStorage(new pg.Pool({ ...cluster, max: 1 }), { schema });
    equal(await single.lock("w", 0), null, "a pool of one connection offers no lock");
    equal(await a.lock("unknown", 0), null, "no lock on a stream that does not exist");
    // The lock is per schema: another schema's stream of the same name is not held by it.
    other = postgresStorage(pool, { schema: `t${++schemas}`, createSchema: true });
    equal(await other.append("w", 0, ["o1"], []), "written", "another schema's stream");
    equal(await a.lock("w", 3), [], "held here");
    equal(await other.lock("w", 0), ["o1"], "and free in another schema");
    await other.unlock("w");
    await a.unlock("w");
  } finally {
    for (const storage of [a, b, other]) await storage?.unlock("w").catch(() => {});
    await otherPool.end();
  }
});

/** A promise's progress, readable while it is pending. */
function pending(promise) {
  const state = { done: false, value: undefined, error: undefined };
  promise.then(
    (value) => Object.assign(state, { done: true, value }),
    (error) => Object.assign(state, { done: true, error }),
  );
  return state;
}

h.test("combine: requests queued while the lock is held go to the next holder, who answers them in its append's commit", async () => {
  const schema = `t${++schemas}`;
  const pools = [0, 1, 2].map(() => new pg.Pool({ ...cluster, max: 3 }));
  const [a, b, c] = pools.map((p, i) => postgresStorage(p, { schema, createSchema: i === 0 }));
  const pause = () => new Promise((r) => setTimeout(r, 200));
  const queuedRows = async () => (await pool.query(`SELECT count(*)::int AS n FROM ${schema}.stream_requests`)).rows[0].n;
  try {
    equal(await a.append("w", 0, ["e1"], []), "written", "first entry");
    // Free: the caller leads at once, with the tail and nothing queued.
    equal(await a.combine("w", 0, "ra"), { tail: ["e1"], queued: [] }, "a lone request leads");
    equal(await queuedRows(), 0, "a lead's own request is out of the queue");
    // Two requests queue behind the holder.
    const bWait = pending(b.combine("w", 1, "rb"));
    await pause();
    const cWait = pending(c.combine("w", 1, "rc"));
    await pause();
    equal([bWait.done, cWait.done], [false, false], "both wait for the holder");
    equal(await a.append("w", 1, ["e2"], [], null, true), "written", "the holder appends alone");
    await a.unlock("w");
    // One of them now leads, and takes the other's request.
    while (!bWait.done && !cWait.done) await pause();
    const [lead, follower, leadStorage, followerRequest] = bWait.done ? [bWait, cWait, b, "rc"] : [cWait, bWait, c, "rb"];
    equal(lead.value.tail, ["e2"], "the lead reads what the holder wrote");
    equal(lead.value.queued.map((q) => q.request), [followerRequest], "and leads the other request");
    const [{ id }] = lead.value.queued;
    ok(Number.isSafeInteger(id), `a queued id is a number: ${id}`);
    // A stale append answers nothing and keeps the hold.
    equal(await leadStorage.append("w", 1, ["x"], [], null, true, [{ id, answer: "not this" }]), { stale: ["e2"] }, "stale");
    await pause();
    equal(follower.done, false, "the follower still waits");
    equal(await leadStorage.append("w", 2, ["e3", "e4"], [], null, true, [{ id, answer: "settled" }]), "written", "the lead's batch");
    while (!follower.done) await pause();
    equal(follower.value, { answered: "settled" }, "the follower gets its answer, in the commit");
    equal(await a.read("w", 0, 10), ["e1", "e2", "e3", "e4"], "the stream");
    await leadStorage.unlock("w");
    equal(await queuedRows(), 0, "every answered request is out of the queue");

    // A lead that ends without a written append: the request it took goes back to its
    // requester, who leads it.
    equal(await a.lock("w", 4), [], "a holds");
    const bBack = pending(b.combine("w", 4, "rb"));
    await pause();
    const cBack = pending(c.combine("w", 4, "rc"));
    await pause();
    await a.unlock("w");
    while (!bBack.done && !cBack.done) await pause();
    const [dropping, dropped, droppingStorage, droppedStorage] = bBack.done ? [bBack, cBack, b, c] : [cBack, bBack, c, b];
    equal(dropping.value.queued.length, 1, "the lead takes the other request");
    await droppingStorage.unlock("w");
    while (!dropped.done) await pause();
    equal(dropped.value, { tail: [], queued: [] }, "its requester leads it, unanswered");
    await droppedStorage.unlock("w");
    equal(await queuedRows(), 0, "nothing left queued");

    // Past the wait, a request no holder took is withdrawn: null, nothing held or queued.
    equal(await a.lock("w", 4), [], "a holds");
    const began = Date.now();
    equal(await b.combine("w", 4, "late"), null, "withdrawn past the wait");
    ok(Date.now() - began >= 1900, `waited ${Date.now() - began} ms`);
    equal(await queuedRows(), 0, "and out of the queue");
    await a.unlock("w");

    // A taken request waits on past the wait for its holder's answer.
    equal(await a.lock("w", 4), [], "a holds again");
    const bSlow = pending(b.combine("w", 4, "rb"));
    await pause();
    const cSlow = pending(c.combine("w", 4, "rc"));
    await pause();
    await a.unlock("w");
    while (!bSlow.done && !cSlow.done) await pause();
    const [slowLead, patient, slowStorage] = bSlow.done ? [bSlow, cSlow, b] : [cSlow, bSlow, c];
    equal(slowLead.value.queued.length, 1, "the lead takes the other request");
    await new Promise((r) => setTimeout(r, 2600));
    equal(patient.done, false, "a taken request is not withdrawn past the wait");
    equal(await slowStorage.append("w", 4, ["e5"], [], null, true, [{ id: slowLead.value.queued[0].id, answer: "at last" }]), "written", "answered late");
    while (!patient.done) await pause();
    equal(patient.value, { answered: "at last" }, "the answer, after the wait");
    equal(await queuedRows(), 0, "nothing left queued");
  } finally {
    for (const storage of [a, b, c]) await storage.unlock("w").catch(() => {});
    for (const p of pools) await p.end();
  }
});

h.test("combine: a request taken at the instant its wait runs out is not withdrawn; a requester that gave up is never settled", async () => {
  const schema = `t${++schemas}`;
  const a = postgresStorage(pool, { schema, createSchema: true });
  const otherPool = new pg.Pool({ ...cluster, max: 3 });
  const b = postgresStorage(otherPool, { schema });
  const pause = (ms = 200) => new Promise((r) => setTimeout(r, ms));
  const impatientPool = new pg.Pool({ ...cluster, max: 3, statement_timeout: 1000 });
  const impatient = postgresStorage(impatientPool, { schema });
  const raw = await pool.connect();
  try {
    equal(await a.append("w", 0, ["e1"], []), "written", "first entry");
    // b waits behind a; a lead takes b's request (its row locked, uncommitted) just as b's wait
    // runs out: b's withdrawal waits for that lead, finds the request taken, and waits on.
    equal(await a.lock("w", 1), [], "a holds");
    const bWait = pending(b.combine("w", 1, "rb"));
    await pause(1500);
    await raw.query("BEGIN");
    equal((await raw.query(`UPDATE ${schema}.stream_requests SET taken = true WHERE request = 'rb'`)).rowCount, 1, "taken");
    await pause(3500); // past b's wait, and past a second wait for the lead's row
    await raw.query("COMMIT");
    await pause();
    equal(bWait.done, false, "b waits on for the lead that took its request");
    await a.unlock("w");
    while (!bWait.done) await pause();
    equal(bWait.value, { tail: [], queued: [] }, "the lead ended unanswered: b leads its own request");
    await b.unlock("w");

    // A requester whose call was cancelled has gone: its request is never taken by a lead.
    equal(await a.lock("w", 1), [], "a holds again");
    let cancelled;
    try {
      await impatient.combine("w", 1, "cancelled");
    } catch (e) {
      cancelled = e;
    }
    equal([cancelled?.code, cancelled?.cause?.code], ["STORAGE_FAILED", "57014"], "the combine is cancelled by its statement timeout");
    await a.unlock("w");
    equal(await a.combine("w", 1, "ra"), { tail: [], queued: [] }, "the next lead takes nothing");
    // A requester that gave up after a lead took its request is not settled either: the lead's
    // batch fails as a whole, and nothing of it is written.
    const gaveUp = pending(impatient.combine("w", 1, "gave-up").catch((e) => e));
    await pause();
    const taken = await pool.query(`UPDATE ${schema}.stream_requests SET taken = true WHERE request = 'gave-up' RETURNING id`);
    equal(taken.rowCount, 1, "a lead takes it");
    while (!gaveUp.done) await pause();
    equal([gaveUp.value?.code, gaveUp.value?.cause?.code], ["STORAGE_FAILED", "57014"], "then its requester's call is cancelled");
    let failed;
    try {
      await a.append("w", 1, ["never"], [], null, true, [{ id: Number(taken.rows[0].id), answer: "too late" }]);
    } catch (e) {
      failed = e;
    }
    ok(failed instanceof AllyError && /withdrawn before its answer/.test(failed.cause?.message), `the lead's append fails: ${failed?.cause?.message}`);
    equal(await a.read("w", 0, 10), ["e1"], "nothing of it is written");
    await a.unlock("w");
    await pool.query(`DELETE FROM ${schema}.stream_requests WHERE request = 'gave-up'`);
    equal(await a.lock("w", 1), [], "held again");
    // An idempotency key shaped like the adapter's quoting is written as given.
    for (const key of ["retry-7$q", "$q$", "a'b\\c"]) {
      const length = (await a.read("w", 0, 100)).length;
      equal(await a.append("w", length, [`x${key}`], [{ key, position: length }], null, true), "written", `key ${key}`);
      equal(await a.findClaim("w", key), length, `claimed ${key}`);
      await a.unlock("w");
      equal(await a.lock("w", length + 1), [], "held again");
    }
    await a.unlock("w");
    equal((await pool.query(`SELECT count(*)::int AS n FROM ${schema}.stream_requests`)).rows[0].n, 0, "nothing left queued");
  } finally {
    await raw.query("ROLLBACK").catch(() => {});
    raw.release();
    for (const storage of [a, b]) await storage.unlock("w").catch(() => {});
    await otherPool.end();
    await impatientPool.end();
  }
});

h.test("postgresStorage refuses a schema that is not an identifier", async () => {
  const thrown = await fails(AllyError, "INVALID_CONFIG", () => postgresStorage(pool, { schema: "x; DROP TABLE y" }));
  equal([thrown.details.key, thrown.message], ["schema", 'config schema: expected a lowercase SQL identifier, got "x; DROP TABLE y"'], "names the option and echoes the value");
});

h.test("wallet operations end to end on PostgreSQL", async () => {
  const sent = [];
  const ally = new Ally({ storage: fresh(), mail: { send: (m) => void sent.push(m) } });
  const r = await ally.make().user(7).company("Elite Global").email("ops@elite.example").gold().create();
  await ally.addCredits(r, 1000, { idempotencyKey: "wire-1", memo: "Wire transfer" });
  await ally.provision(r, 300, "Issue Pro License");
  await ally.provisionBulk(r, [{ cost: 100 }, { cost: 150, memo: "seat" }], { idempotencyKey: "bulk-1" });
  const again = await ally.provisionBulk(r, [{ cost: 100 }, { cost: 150, memo: "seat" }], { idempotencyKey: "bulk-1" });
  equal(again.map((e) => e.sequence), [3, 4], "the bulk is answered again, not written twice");
  equal(await ally.balance(r), 450, "balance");
  equal(sent.length, 1, "one low-credit mail");
  const e = await fails(AllyError, "INSUFFICIENT_CREDITS", () => ally.provisionBulk(r, [{ cost: 400 }, { cost: 51 }]));
  equal(e.details.items, ["LINKED_ITEM_FAILED", "INSUFFICIENT_CREDITS"], "per item");
  const ledger = await ally.ledger(r);
  const audit = validateLedger(ledger, { walletId: r.id });
  equal([audit.ok, audit.balance, audit.entries], [true, 450, 4], "audit");
  equal((await ally.transactions(r, { limit: 2 })).map((x) => x.sequence), [4, 3], "newest first");
  // A second engine (another process, in production) sees the same wallet.
  const other = new Ally({ storage: postgresStorage(pool, { schema: `t${schemas}` }) });
  equal(await other.balance(r.id), 450, "shared");
});

h.test("4 processes × 250 concurrent provisions at one wallet: no overdraft, every refusal is INSUFFICIENT_CREDITS", async () => {
  const schema = "concurrency";
  await setupPostgres(pool, { schema });
  const storage = postgresStorage(pool, { schema });
  const ally = new Ally({ storage });
  const r = await ally.make().user(1).company("Race Corp").create();
  const start = 60_000, cost = 100, processes = 4, each = 250;
  await ally.addCredits(r, start);
  const worker = fileURLToPath(new URL("./pg-provision-worker.mjs", import.meta.url));
  const began = performance.now();
  const results = await Promise.all(
    Array.from({ length: processes }, () =>
      run(process.execPath, [worker, String(cluster.port), schema, r.id, String(each), String(cost)], { maxBuffer: 1 << 20 }),
    ),
  );
  const seconds = (performance.now() - began) / 1000;
  const outcomes = results.map((x) => JSON.parse(x.stdout.trim().split("\n").pop()));
  const accepted = outcomes.reduce((n, o) => n + o.accepted, 0);
  const refusedCodes = {};
  for (const o of outcomes) for (const [code, n] of Object.entries(o.refused)) refusedCodes[code] = (refusedCodes[code] ?? 0) + n;
  const balance = await new Ally({ storage }).balance(r);
  const ledger = await new Ally({ storage }).ledger(r);
  const audit = validateLedger(ledger, { walletId: r.id });
  const debits = ledger.filter((x) => x.kind === "debit").reduce((n, x) => n + x.amount, 0);
  console.log(
    `[postgres] concurrency: ${processes} processes × ${each} provisions of ${cost} from ${start}: ` +
      `${accepted} accepted, refused ${JSON.stringify(refusedCodes)}, balance ${balance}, ` +
      `ledger ${ledger.length} entries (validates: ${audit.ok}), ${seconds.toFixed(2)} s`,
  );
  equal(accepted + (refusedCodes.INSUFFICIENT_CREDITS ?? 0), processes * each, "every provision accepted or refused INSUFFICIENT_CREDITS");
  equal(Object.keys(refusedCodes).filter((c) => c !== "INSUFFICIENT_CREDITS"), [], "no other refusal");
  equal(accepted, start / cost, "exactly what the credit covers");
  equal(balance, start - accepted * cost, "balance = start − accepted × cost");
  equal(debits, accepted * cost, "the sum of the entries");
  equal(ledger.length, accepted + 1, "one entry per accepted provision");
  ok(audit.ok, `validateLedger: ${JSON.stringify(audit.violations.slice(0, 3))}`);
});

const summary = await h.run();
report(summary, console.log);
await pool.end();
cluster.stop();
process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
