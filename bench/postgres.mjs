// Provisions per second through the PostgreSQL adapter, against the plain-SQL peer: the debit a
// user would hand-write (one transaction: a guarded UPDATE of the balance, an INSERT of the entry).
// Client processes (each its own pool, and for the engine its own instance) provision one credit
// at a time over the same window: one client alone, 8 at one wallet, then 8 each at its own.
// Each first provisions for WARM_SECONDS, uncounted, so that the window measures processes whose
// compilers have warmed up (as a service's have), on both sides alike. Each scenario runs ROUNDS
// times, the engine's window and the SQL one alternating (which goes first alternates too), and
// compares the totals: the machine's speed drifts by more than the difference measured (windows
// of one side alone varied by ±15 % within a minute), and alternating spreads that drift over
// both sides.
// Then the cold start: the first provision of a fresh engine instance at a wallet of 1 000 and of
// 50 000 entries, each in a fresh process. A throwaway cluster on loopback with PostgreSQL's
// default durability (fsync on), the same for both sides.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { Ally, validateLedger } from "ally-engine";
import { postgresStorage, setupPostgres } from "ally-engine/postgres";
import { startPostgres } from "../tests/node/pg-cluster.mjs";

const run = promisify(execFile);
const CLIENTS = 8;
const SECONDS = 8;
const WARM_SECONDS = 2;
const ROUNDS = 3;
const CREDIT = 1e12;
const COLD_SIZES = [1_000, 50_000];
const COLD_RUNS = 5;
const BULK_MAX = 10_000; // the most items one provisionBulk takes
const cluster = await startPostgres({ durable: true });
const pool = new pg.Pool({ ...cluster, max: 4 });
const schema = "bench";
await setupPostgres(pool, { schema });
const ally = new Ally({ storage: postgresStorage(pool, { schema }) });
const wallets = [];
for (let i = 0; i < CLIENTS; i++) {
  const r = await ally.make().user(i + 1).company(`Bench ${i + 1}`).create();
  await ally.addCredits(r, CREDIT);
  wallets.push(r.id);
}
await pool.query("CREATE TABLE peer_wallet (id text PRIMARY KEY, balance bigint)");
await pool.query("CREATE TABLE peer_entry (id bigserial, wallet text, amount bigint, at timestamptz DEFAULT now())");
await pool.query("INSERT INTO peer_wallet (id, balance) SELECT unnest($1::text[]), $2", [wallets, CREDIT]);
const client = fileURLToPath(new URL("./pg-client.mjs", import.meta.url));
const clientRun = (job) => run(process.execPath, [client, JSON.stringify({ port: cluster.port, schema, ...job })]).then(({ stdout }) => JSON.parse(stdout));

/** Runs `clients` processes of `mode` over one window; prints their line and answers provisions/s. */
async function window(label, mode, clients, walletOf) {
  const warm = Date.now() + 3000; // time for the processes to start and connect
  const start = warm + WARM_SECONDS * 1000;
  const until = start + SECONDS * 1000;
  const outs = await Promise.all(Array.from({ length: clients }, (_, i) => clientRun({ mode, wallet: walletOf(i), warm, start, until })));
  const accepted = outs.reduce((n, o) => n + o.accepted, 0);
  const refused = {};
  for (const o of outs) for (const [code, n] of Object.entries(o.refused)) refused[code] = (refused[code] ?? 0) + n;
  console.log(`${label.padEnd(28)} ${mode === "ally" ? "ally" : "SQL "} ${(accepted / SECONDS).toFixed(0).padStart(7)} provisions/s  (${accepted} in ${SECONDS} s; refused ${JSON.stringify(refused)})`);
  return accepted / SECONDS;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const verdict = (met) => (met ? "yes" : "NO");

console.log(
  `\nPostgreSQL ${(await pool.query("SHOW server_version")).rows[0].server_version}, fsync on, up to ${CLIENTS} client processes, ` +
    `provisions of 1 credit awaited one by one per client, after ${WARM_SECONDS} s of warm-up, through the engine (ally) and as hand-written SQL (SQL)`,
);
const scenarios = [
  { label: "1 client, one wallet", clients: 1, walletOf: () => wallets[0], target: 0.8 },
  { label: `${CLIENTS} clients, one wallet`, clients: CLIENTS, walletOf: () => wallets[0], target: 1 },
  { label: `${CLIENTS} clients, ${CLIENTS} wallets`, clients: CLIENTS, walletOf: (i) => wallets[i] },
];
for (const { label, clients, walletOf, target } of scenarios) {
  let engine = 0;
  let sql = 0;
  const ratios = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Engine first in odd rounds, SQL first in even ones, so that neither side always runs later.
    const name = round === 1 ? label : `  round ${round}`;
    const [e, q] = round % 2 === 1
      ? [await window(name, "ally", clients, walletOf), await window("", "sql", clients, walletOf)]
      : [...[await window(name, "sql", clients, walletOf), await window("", "ally", clients, walletOf)].reverse()];
    engine += e;
    sql += q;
    ratios.push((e / q).toFixed(2));
  }
  const ratio = engine / sql;
  const goal = target === undefined ? "" : `  (target ≥ ${target}x: ${verdict(ratio >= target)})`;
  console.log(
    `${"".padEnd(28)} ally/SQL ${ratio.toFixed(2)}x over ${ROUNDS} rounds (${(engine / ROUNDS).toFixed(0)} against ${(sql / ROUNDS).toFixed(0)} provisions/s; rounds ${ratios.join(", ")})${goal}`,
  );
}

// Wallets for the cold start: one top-up, then provisions of 1 credit up to the size, in bulks.
const cold = [];
for (const [i, size] of COLD_SIZES.entries()) {
  const r = await ally.make().user(CLIENTS + 1 + i).company(`Cold ${size}`).create();
  await ally.addCredits(r, CREDIT);
  for (let left = size - 1; left > 0; left -= BULK_MAX) {
    await ally.provisionBulk(r, Array.from({ length: Math.min(BULK_MAX, left) }, () => ({ cost: 1 })));
  }
  const { entries } = validateLedger(await ally.exportLedger(r), { walletId: r.id });
  if (entries !== size) throw new Error(`the cold wallet of ${size} entries holds ${entries}`);
  cold.push({ size, wallet: r.id, ms: [] });
}
// Alternating the sizes spreads any drift of the machine over both.
for (let n = 0; n < COLD_RUNS; n++) {
  for (const c of cold) c.ms.push((await clientRun({ mode: "cold", wallet: c.wallet })).ms);
}
console.log(`\ncold start: the first provision of a fresh engine instance in a fresh process (median of ${COLD_RUNS})`);
for (const c of cold) {
  console.log(`${`wallet of ${c.size.toLocaleString("en-US")} entries`.padEnd(28)} ${median(c.ms).toFixed(1).padStart(9)} ms  (${c.ms.map((ms) => ms.toFixed(1)).join(", ")})`);
}
const [small, large] = cold.map((c) => median(c.ms));
console.log(`${`${COLD_SIZES[1] / 1000}k/${COLD_SIZES[0] / 1000}k`.padEnd(28)} ${(large / small).toFixed(2).padStart(9)}x  (target ≤ 3x: ${verdict(large / small <= 3)})`);

for (const id of [...wallets, ...cold.map((c) => c.wallet)]) {
  const audit = validateLedger(await ally.exportLedger(id), { walletId: id });
  if (!audit.ok) throw new Error(`the ledger of ${id} does not validate after the benchmark`);
}
const { rows: unbalanced } = await pool.query(
  `SELECT w.id FROM peer_wallet w LEFT JOIN peer_entry e ON e.wallet = w.id
    GROUP BY w.id, w.balance HAVING w.balance <> $1 + COALESCE(sum(e.amount), 0)`,
  [CREDIT],
);
if (unbalanced.length > 0) throw new Error(`the peer wallets ${unbalanced.map((r) => r.id)} do not match their entries`);
console.log("\nevery wallet's ledger validates afterwards, and every peer wallet's balance matches its entries");
await pool.end();
cluster.stop();
