// Provisions per second through the PostgreSQL adapter: 8 client processes (each its own engine
// instance and pool) provisioning one credit at a time, first all at one wallet, then each at
// its own, over the same window; one client alone for scale. A throwaway cluster on loopback
// with PostgreSQL's default durability (fsync on).
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
const cluster = await startPostgres({ durable: true });
const pool = new pg.Pool({ ...cluster, max: 4 });
const schema = "bench";
await setupPostgres(pool, { schema });
const ally = new Ally({ storage: postgresStorage(pool, { schema }) });
const wallets = [];
for (let i = 0; i < CLIENTS; i++) {
  const r = await ally.make().user(i + 1).company(`Bench ${i + 1}`).create();
  await ally.addCredits(r, 1e12);
  wallets.push(r.id);
}
const client = fileURLToPath(new URL("./pg-client.mjs", import.meta.url));

async function scenario(name, clients, walletOf) {
  const start = Date.now() + 3000; // time for the processes to start and connect
  const until = start + SECONDS * 1000;
  const outs = await Promise.all(
    Array.from({ length: clients }, (_, i) =>
      run(process.execPath, [client, String(cluster.port), schema, walletOf(i), String(start), String(until)]).then(({ stdout }) => JSON.parse(stdout)),
    ),
  );
  const accepted = outs.reduce((n, o) => n + o.accepted, 0);
  const refused = {};
  for (const o of outs) for (const [code, n] of Object.entries(o.refused)) refused[code] = (refused[code] ?? 0) + n;
  console.log(`${name.padEnd(28)} ${(accepted / SECONDS).toFixed(0).padStart(7)} provisions/s  (${accepted} in ${SECONDS} s; refused ${JSON.stringify(refused)})`);
  return accepted;
}

console.log(`\nPostgreSQL ${(await pool.query("SHOW server_version")).rows[0].server_version}, fsync on, ${CLIENTS} client processes, provisions of 1 credit awaited one by one per client`);
await scenario("1 client, one wallet", 1, () => wallets[0]);
await scenario("8 clients, one wallet", CLIENTS, () => wallets[0]);
await scenario("8 clients, 8 wallets", CLIENTS, (i) => wallets[i]);
for (const id of wallets) {
  const audit = validateLedger(await ally.exportLedger(id), { walletId: id });
  if (!audit.ok) throw new Error(`the ledger of ${id} does not validate after the benchmark`);
}
console.log("every wallet's ledger validates afterwards");
await pool.end();
cluster.stop();
