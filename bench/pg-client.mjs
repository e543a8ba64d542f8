// One client of the PostgreSQL benchmark: its own engine instance and connection pool, provisions
// of 1 credit one after another at its wallet from `start` until `until` (ms since the epoch);
// prints one JSON line.
import pg from "pg";
import { Ally, AllyError } from "ally-engine";
import { postgresStorage } from "ally-engine/postgres";

const [port, schema, walletId, start, until] = process.argv.slice(2).map((v, i) => (i === 2 || i === 1 ? v : Number(v)));
const pool = new pg.Pool({ host: "127.0.0.1", port, user: "postgres", database: "postgres", max: 2 });
const ally = new Ally({ storage: postgresStorage(pool, { schema }) });
await ally.balance(walletId); // connect and replay before the window opens
await new Promise((resolve) => setTimeout(resolve, Math.max(0, start - Date.now())));
const refused = {};
let accepted = 0;
while (Date.now() < until) {
  try {
    await ally.provision(walletId, 1);
    accepted += 1;
  } catch (e) {
    const code = e instanceof AllyError ? e.code : `${e?.name}: ${e?.message}`;
    refused[code] = (refused[code] ?? 0) + 1;
  }
}
await pool.end();
console.log(JSON.stringify({ accepted, refused }));
