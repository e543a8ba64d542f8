// The reference service (examples/node-service) as a client sees it: built with tsc, started as
// its own process on loopback against a real PostgreSQL and a real SMTP listener, and driven
// over HTTP: happy paths, replays, refusals, another reseller's ids, malformed bodies, 200
// concurrent provisions at one wallet, the readiness check, metrics and a graceful shutdown.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { Ally, validateLedger } from "ally-engine";
import { postgresStorage } from "ally-engine/postgres";
import { Harness, equal, ok, report } from "../js/harness.mjs";
import { startPostgres } from "./pg-cluster.mjs";
import { startSmtp } from "./smtp-listener.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const cluster = await startPostgres();
const databaseUrl = `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${cluster.database}`;
const pool = new pg.Pool({ ...cluster, max: 4 });
const smtp = await startSmtp();
const mails = smtp.received;

const ADMIN = "admin-token-for-tests-only";
function start() {
  const child = spawn(process.execPath, [`${root}/examples/node-service/dist/main.js`], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      HOST: "127.0.0.1",
      PORT: "0",
      ADMIN_TOKEN: ADMIN,
      API_KEY_SECRET: "key-secret-for-tests-only",
      SMTP_URL: `smtp://127.0.0.1:${smtp.port}?ignoreTLS=true`,
      LOW_CREDIT_THRESHOLD: "500",
      CHECK_CREDITS_EVERY_MS: "300",
      LOG: "false",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let errors = "";
  child.stderr.on("data", (d) => (errors += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal, errors })));
  const listening = new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const match = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (match) resolve(match[1]);
    });
    exited.then(({ code }) => reject(new Error(`the service exited (${code}) before listening: ${errors}`)));
  });
  return { child, exited, listening };
}

const service = start();
const base = await service.listening;
const call = async (method, path, { token, body, key, raw } = {}) => {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (key) headers["idempotency-key"] = key;
  if (body !== undefined || raw !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}${path}`, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, body: json, headers: response.headers };
};
const h = new Harness("service");
const t = (name, body) => h.test(name, body);
const makeReseller = async (userId, company, email) => {
  const made = await call("POST", "/admin/resellers", { token: ADMIN, body: { userId, company, email } });
  equal(made.status, 201, `create ${company}`);
  return made.body;
};

t("health: live, and ready once the schema is migrated", async () => {
  equal((await call("GET", "/health/live")).status, 200, "live");
  const ready = await call("GET", "/health/ready");
  equal([ready.status, ready.body], [200, { status: "ready", schemaVersion: 3 }], "ready");
});

t("a top-up with its invoice row, provisions, replays and refusals", async () => {
  equal((await call("POST", "/admin/resellers", { body: { userId: 9, company: "X" } })).status, 401, "admin routes need the admin token");
  const { reseller, apiKey } = await makeReseller(1, "Elite Global", "ops@elite.example");
  const top = await call("POST", `/admin/resellers/${reseller.id}/credits`, { token: ADMIN, key: "top-1", body: { amount: 1000, memo: "wire" } });
  equal([top.status, top.body.balanceAfter, top.body.replayed], [201, 1000, false], "a first top-up is 201");
  const again = await call("POST", `/admin/resellers/${reseller.id}/credits`, { token: ADMIN, key: "top-1", body: { amount: 1000, memo: "wire" } });
  equal([again.status, again.body.id, again.headers.get("idempotent-replayed")], [200, top.body.id, "true"], "its replay is 200");
  const invoices = await pool.query("SELECT credits FROM app.invoices WHERE reseller_id = $1", [reseller.id]);
  equal(invoices.rows.map((r) => Number(r.credits)), [1000], "one invoice row, written with the entry");
  const p1 = await call("POST", "/v1/provisions", { token: apiKey, key: "p-1", body: { cost: 100, memo: "Issue Pro License" } });
  equal([p1.status, p1.body.balanceAfter, p1.body.memo], [201, 900, "Issue Pro License"], "a provision");
  equal((await call("POST", "/v1/provisions", { token: apiKey, key: "p-1", body: { cost: 100, memo: "Issue Pro License" } })).status, 200, "its replay");
  const mismatch = await call("POST", "/v1/provisions", { token: apiKey, key: "p-1", body: { cost: 101 } });
  equal([mismatch.status, mismatch.body.error.code], [422, "IDEMPOTENCY_MISMATCH"], "a key reused for another request");
  const poor = await call("POST", "/v1/provisions", { token: apiKey, body: { cost: 5000 } });
  equal([poor.status, poor.body.error.code, poor.body.error.details.balance], [402, "INSUFFICIENT_CREDITS", 900], "more than the balance");
  equal((await call("GET", "/v1/balance", { token: apiKey })).body, { balance: 900 }, "the balance");
  const page = await call("GET", "/v1/transactions?limit=1", { token: apiKey });
  equal(page.body.map((e) => e.sequence), [2], "the newest entry");
  equal((await call("GET", "/v1/transactions/by-key/p-1", { token: apiKey })).body.map((e) => e.id), [p1.body.id], "looked up by its key");
  equal((await call("GET", "/v1/transactions/by-key/nope", { token: apiKey })).status, 404, "an unknown key");
  const bulk = await call("POST", "/v1/provisions/bulk", { token: apiKey, key: "b-1", body: { items: [{ cost: 50 }, { cost: 60, memo: "seat" }] } });
  equal([bulk.status, bulk.body.map((e) => e.balanceAfter)], [201, [850, 790]], "a bulk provision");
  // Below the threshold of 500: the low-credit mail goes out through SMTP.
  await call("POST", "/v1/provisions", { token: apiKey, body: { cost: 400 } });
  for (let i = 0; i < 50 && !mails.some((m) => m.to.includes("ops@elite.example")); i++) await new Promise((r) => setTimeout(r, 50));
  ok(mails.some((m) => m.to.includes("ops@elite.example") && /Elite Global/.test(m.raw)), `the low-credit mail: ${mails.length} received`);
});

t("another reseller's ids answer as missing ones, and bad callers are refused", async () => {
  const a = await makeReseller(2, "Alpha", "a@alpha.example");
  const b = await makeReseller(3, "Beta", "b@beta.example");
  const theirs = await call("POST", "/v1/clients", { token: b.apiKey, body: { name: "Beta's client" } });
  equal(theirs.status, 201, "a client of B");
  const hidden = await call("GET", `/v1/clients/${theirs.body.id}`, { token: a.apiKey });
  const missing = await call("GET", "/v1/clients/cl_missing", { token: a.apiKey });
  equal([hidden.status, missing.status], [404, 404], "A cannot see B's client");
  equal(hidden.body.error.message.replace(theirs.body.id, "<id>"), missing.body.error.message.replace("cl_missing", "<id>"), "the same answer");
  // Another reseller's client email is A's to use too: nothing says it exists elsewhere.
  const sameEmail = await call("POST", "/v1/clients", { token: b.apiKey, body: { name: "Taken?", email: "ceo@target.example" } });
  equal(sameEmail.status, 201, "B's client with an email");
  equal((await call("POST", "/v1/clients", { token: a.apiKey, body: { name: "Mine", email: "ceo@target.example" } })).status, 201, "the same email for A");
  equal((await call("POST", "/v1/clients", { token: b.apiKey, body: { name: "Twice", email: "CEO@target.example" } })).status, 409, "B's own duplicate");
  equal((await call("GET", "/v1/clients", { token: a.apiKey })).body.map((c) => c.name), ["Mine"], "A's own clients only");
  equal((await call("GET", "/v1/balance", { token: `${a.apiKey.slice(0, -2)}xx` })).status, 401, "a forged key");
  equal((await call("GET", "/v1/balance")).status, 401, "no key");
  // Rotating a reseller's key revokes the old one.
  const rotated = await call("POST", `/admin/resellers/${a.reseller.id}/api-key`, { token: ADMIN });
  equal(rotated.status, 201, "a new key");
  equal((await call("GET", "/v1/balance", { token: rotated.body.apiKey })).status, 200, "the new key works");
  equal((await call("GET", "/v1/balance", { token: a.apiKey })).status, 401, "the old key is revoked");
  // An admin's and a reseller's idempotency keys do not collide on one wallet.
  await call("POST", `/admin/resellers/${b.reseller.id}/credits`, { token: ADMIN, key: "inv-1", body: { amount: 50 } });
  const theirKey = await call("POST", "/v1/provisions", { token: b.apiKey, key: "inv-1", body: { cost: 1 } });
  equal(theirKey.status, 201, "a reseller's key of the same text is its own");
});

t("malformed bodies are 400 INVALID_INPUT and change nothing", async () => {
  const { reseller, apiKey } = await makeReseller(4, "Gamma", "g@gamma.example");
  await call("POST", `/admin/resellers/${reseller.id}/credits`, { token: ADMIN, body: { amount: 100 } });
  for (const [what, options] of [
    ["not JSON", { raw: "{ cost: 1" }],
    ["an array", { body: [1] }],
    ["an unknown field", { body: { cost: 1, colour: "red" } }],
    ["a string cost", { body: { cost: "1" } }],
    ["a refid as the cost", { body: { cost: reseller.refid, memo: 5 } }],
    ["a number as the memo", { body: { cost: 1, memo: 5 } }],
    ["a fraction of a credit", { body: { cost: 1.5 } }],
    ["a negative cost", { body: { cost: -1 } }],
    ["a huge cost", { body: { cost: 1e300 } }],
    ["a __proto__ key", { raw: '{"cost":1,"__proto__":{"admin":true}}' }],
    ["no cost", { body: { memo: "x" } }],
  ]) {
    const answer = await call("POST", "/v1/provisions", { token: apiKey, ...options });
    equal([answer.status, answer.body?.error?.code], [400, "INVALID_INPUT"], what);
  }
  equal((await call("GET", "/v1/transactions?limit=abc", { token: apiKey })).status, 400, "a bad limit");
  equal((await call("POST", `/admin/resellers/${reseller.id}/credits`, { token: ADMIN, body: { amount: 0.5 } })).status, 400, "a fractional top-up");
  equal((await call("GET", "/v1/balance", { token: apiKey })).body, { balance: 100 }, "nothing changed");
  equal(Number((await pool.query("SELECT count(*) AS n FROM app.invoices WHERE reseller_id = $1", [reseller.id])).rows[0].n), 1, "no invoice for a refused top-up");
});

t("200 concurrent provisions at one wallet: no overdraft, and the ledger validates", async () => {
  const { reseller, apiKey } = await makeReseller(5, "Race Corp", "race@race.example");
  await call("POST", `/admin/resellers/${reseller.id}/credits`, { token: ADMIN, body: { amount: 10_000 } });
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => call("POST", "/v1/provisions", { token: apiKey, key: `race-${i}`, body: { cost: 75 } })));
  const statuses = {};
  for (const a of answers) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
  equal(statuses, { 201: 133, 402: 67 }, "exactly what the credit covers");
  equal((await call("GET", "/v1/balance", { token: apiKey })).body, { balance: 10_000 - 133 * 75 }, "the balance");
  const ledger = await new Ally({ storage: postgresStorage(pool) }).ledger(reseller.id);
  const audit = validateLedger(ledger, { walletId: reseller.id });
  equal([audit.ok, audit.entries, audit.balance], [true, 134, 25], "the ledger validates");
});

t("payments, a commission run and a payout batch through the admin routes", async () => {
  const { reseller, apiKey } = await makeReseller(6, "Delta", "d@delta.example");
  const client = await call("POST", "/v1/clients", { token: apiKey, body: { name: "Acme" } });
  const payment = await call("POST", "/admin/payments", { token: ADMIN, body: { id: "pay-1", clientId: client.body.id, amount: "5000.00", at: "2026-01-10" } });
  equal(payment.status, 201, `a payment: ${JSON.stringify(payment.body)}`);
  const run = await call("POST", "/admin/commissions/process", { token: ADMIN, body: { start: "2026-01-01", end: "2026-02-01" } });
  equal([run.status, run.body.payments], [200, 1], `a commission run: ${JSON.stringify(run.body)}`);
  const batch = await call("POST", "/admin/payouts", { token: ADMIN, body: { description: "January" } });
  equal(batch.status, 201, `a payout batch: ${JSON.stringify(batch.body)}`);
  equal((await call("POST", "/admin/payments", { token: ADMIN, body: { id: "pay-2", clientId: client.body.id, amount: "1.999", at: "2026-01-10" } })).status, 400, "a payment of a fraction of a cent");
  equal((await call("GET", `/admin/resellers/${reseller.id}`, { token: ADMIN })).body.id, reseller.id, "the reseller");
});

t("metrics export the engine's events", async () => {
  equal((await call("GET", "/metrics")).status, 401, "metrics need the admin token");
  const metrics = await call("GET", "/metrics", { token: ADMIN });
  equal(metrics.status, 200, "metrics");
  ok(/ally_storage_calls_total\{operation="append",outcome="written"\} [1-9]/.test(metrics.body), "written appends");
  ok(/ally_wallet_replays_total [1-9]/.test(metrics.body), "replays");
  ok(/ally_storage_call_duration_ms_count\{operation="get"\} [1-9]/.test(metrics.body), "timed calls");
  ok(/http_requests_total\{route="\/v1\/provisions",status="201"\} [1-9]/.test(metrics.body), "requests by route and status");
});

t("SIGTERM: requests in flight finish, then the process exits 0", async () => {
  const { reseller, apiKey } = await makeReseller(7, "Shutdown", "s@shutdown.example");
  await call("POST", `/admin/resellers/${reseller.id}/credits`, { token: ADMIN, body: { amount: 1000 } });
  const inFlight = Array.from({ length: 20 }, (_, i) => call("POST", "/v1/provisions", { token: apiKey, key: `stop-${i}`, body: { cost: 10 } }).catch((error) => ({ error })));
  await new Promise((r) => setTimeout(r, 15));
  service.child.kill("SIGTERM");
  const answers = await Promise.all(inFlight);
  const { code, errors } = await service.exited;
  equal(code, 0, `a clean exit ${errors}`);
  const accepted = answers.filter((a) => a.status === 201).length;
  const refusedAtTheDoor = answers.filter((a) => a.error && /ECONNREFUSED/.test(String(a.error.cause?.code ?? a.error.cause ?? a.error))).length;
  equal(accepted + refusedAtTheDoor, 20, `each request answered or never accepted: ${JSON.stringify(answers.map((a) => a.status ?? String(a.error?.cause?.code ?? a.error)))}`);
  const balance = await new Ally({ storage: postgresStorage(pool) }).balance(reseller.id);
  equal(balance, 1000 - accepted * 10, "every answered provision is in the ledger, and only those");
});

const summary = await h.run();
report(summary, console.log);
if (service.child.exitCode === null) service.child.kill("SIGKILL");
smtp.close();
await pool.end();
cluster.stop();
process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
