// One client process of the PostgreSQL benchmark, with its own connection pool. Its one argument
// is JSON, `{ mode, port, schema, wallet, warm, start, until }` (times in ms since the epoch):
//   "ally"  its own engine instance provisions 1 credit at a time at `wallet`, one after another,
//           from `warm` on, and counts those from `start` until `until`; prints
//           `{ accepted, refused }`. The provisions before `start` warm the process up (its
//           compilers), as a service that has run for a while is.
//   "sql"   the same provisions as the transaction a user would hand-write on peer_wallet and
//           peer_entry; prints `{ accepted, refused }`.
//   "cold"  the time a fresh engine instance takes for its first provision at `wallet`, its first
//           storage reads included and connecting excluded; prints `{ ms }`.
import pg from "pg";
import { Ally, AllyError } from "ally-engine";
import { postgresStorage } from "ally-engine/postgres";

const { mode, port, schema, wallet, warm, start, until } = JSON.parse(process.argv[2]);
const CONNECTIONS = 2;
const pool = new pg.Pool({ host: "127.0.0.1", port, user: "postgres", database: "postgres", max: CONNECTIONS });

/** Whether the debit was made: false when the balance does not cover it. */
async function provisionSql(walletId, cost) {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("BEGIN");
    const debited = await client.query(
      "UPDATE peer_wallet SET balance = balance - $1 WHERE id = $2 AND balance >= $1",
      [cost, walletId],
    );
    if (debited.rowCount !== 1) {
      await client.query("ROLLBACK");
      return false;
    }
    await client.query("INSERT INTO peer_entry (wallet, amount) VALUES ($1, $2)", [walletId, -cost]);
    await client.query("COMMIT");
    return true;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}

/**
 * Runs `provision()` back to back from `warm` on, and counts what it answers over the window; it
 * answers null, or the code of its refusal.
 */
async function window(provision) {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, (warm ?? start) - Date.now())));
  while (Date.now() < start) await provision();
  const refused = {};
  let accepted = 0;
  while (Date.now() < until) {
    let refusal;
    try {
      refusal = await provision();
    } catch (e) {
      refusal = `${e?.name}: ${e?.message}`;
    }
    if (refusal === null) accepted += 1;
    else refused[refusal] = (refused[refusal] ?? 0) + 1;
  }
  return { accepted, refused };
}

let result;
if (mode === "ally") {
  const ally = new Ally({ storage: postgresStorage(pool, { schema }) });
  await ally.balance(wallet); // connect and replay before the window opens
  result = await window(async () => {
    try {
      await ally.provision(wallet, 1);
      return null;
    } catch (e) {
      if (e instanceof AllyError) return e.code;
      throw e;
    }
  });
} else if (mode === "sql") {
  await pool.query("SELECT balance FROM peer_wallet WHERE id = $1", [wallet]); // connect before the window opens
  result = await window(async () => ((await provisionSql(wallet, 1)) ? null : "INSUFFICIENT_CREDITS"));
} else if (mode === "cold") {
  // Open every connection the pool may use, so that only the engine's own work is timed.
  await Promise.all(Array.from({ length: CONNECTIONS }, () => pool.query("SELECT 1")));
  const ally = new Ally({ storage: postgresStorage(pool, { schema }) });
  const began = performance.now();
  await ally.provision(wallet, 1);
  result = { ms: performance.now() - began };
} else {
  throw new Error(`unknown mode ${JSON.stringify(mode)}`);
}
await pool.end();
console.log(JSON.stringify(result));
