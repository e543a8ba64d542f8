// One process of the concurrency test: fires `count` concurrent provisions of `cost` credits at
// one wallet in PostgreSQL and prints what happened as one JSON line.
import pg from "pg";
import { Ally, AllyError } from "ally-engine";
import { postgresStorage } from "ally-engine/postgres";

const [port, schema, resellerId, count, cost] = process.argv.slice(2);
const pool = new pg.Pool({ host: "127.0.0.1", port: Number(port), user: "postgres", database: "postgres", max: 8 });
const ally = new Ally({ storage: postgresStorage(pool, { schema }) });
const outcomes = await Promise.allSettled(
  Array.from({ length: Number(count) }, (_, i) => ally.provision(resellerId, Number(cost), `job ${process.pid}/${i}`)),
);
const refused = {};
let accepted = 0;
for (const o of outcomes) {
  if (o.status === "fulfilled") accepted += 1;
  else {
    const code = o.reason instanceof AllyError ? o.reason.code : `${o.reason?.name}: ${o.reason?.message}`;
    refused[code] = (refused[code] ?? 0) + 1;
  }
}
await pool.end();
console.log(JSON.stringify({ accepted, refused }));
