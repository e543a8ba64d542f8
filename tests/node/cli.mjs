// The operator's command (`npx ally-engine`, pkg/cli.mjs) on a real PostgreSQL: audits of a
// stored wallet and of exported files (sound and tampered), the credit check, a commission run
// interrupted with SIGINT and resumed, a period's report as CSV, and its exit codes.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { Ally } from "ally-engine";
import { postgresStorage, setupPostgres } from "ally-engine/postgres";
import { Harness, equal, ok, report } from "../js/harness.mjs";
import { startPostgres } from "./pg-cluster.mjs";

const cli = fileURLToPath(new URL("../../pkg/cli.mjs", import.meta.url));
const cluster = await startPostgres();
const database = `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${cluster.database}`;
const pool = new pg.Pool({ ...cluster, max: 8 });
await setupPostgres(pool);
const work = mkdtempSync(join(tmpdir(), "ally-cli-"));
const ally = new Ally({ storage: postgresStorage(pool), config: { lowCreditThreshold: 500 } });

/** Runs the command; `onStderr(line, child)` sees each stderr line as it comes. */
function run(args, { onStderr } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args, "--database", database], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      if (onStderr) for (const line of String(d).split("\n").filter(Boolean)) onStderr(line, child);
    });
    child.on("exit", (code) => {
      let json = null;
      try {
        json = JSON.parse(stdout.trim().split("\n").pop());
      } catch {}
      resolve({ code, stdout, stderr, json });
    });
  });
}

const h = new Harness("cli");
const t = (name, body) => h.test(name, body);

const r = await ally.make().user(1).company("Audited").email("ops@audited.example").create();
await ally.addCredits(r, 1000, { idempotencyKey: "top" });
for (let i = 0; i < 30; i++) await ally.provision(r, 20, `p${i}`);

t("audit-wallet: a sound wallet is 0; one edited in the database is 1, with its violations", async () => {
  const sound = await run(["audit-wallet", r.id, "--json"]);
  equal([sound.code, sound.json?.ok, sound.json?.entries, sound.json?.balance], [0, true, 31, 400], `sound: ${sound.stderr}`);
  const human = await run(["audit-wallet", r.id]);
  ok(human.code === 0 && human.stdout.startsWith("ok: 31 entries, balance 400"), human.stdout);
  const tampered = await ally.make().user(2).company("Tampered").create();
  await ally.addCredits(tampered, 100);
  await ally.provision(tampered, 10);
  await pool.query(`UPDATE ally.stream_entries SET data = replace(data, '"amount":10,', '"amount":1,') WHERE stream = $1 AND position = 1`, [`ledger:${tampered.id}`]);
  const found = await run(["audit-wallet", tampered.id, "--json"]);
  equal([found.code, found.json?.ok], [1, false], `tampered: ${found.stdout}`);
  ok(found.json.violations.some((v) => v.code === "HASH_MISMATCH"), JSON.stringify(found.json.violations));
  // Put the entry back: a wallet that does not validate stops every job that touches it.
  await pool.query(`UPDATE ally.stream_entries SET data = replace(data, '"amount":1,', '"amount":10,') WHERE stream = $1 AND position = 1`, [`ledger:${tampered.id}`]);
  equal((await run(["audit-wallet", tampered.id, "--json"])).code, 0, "restored");
  const missing = await run(["audit-wallet", "rs_missing"]);
  equal(missing.code, 3, `a missing reseller: ${missing.stderr}`);
  ok(missing.stderr.startsWith("NOT_FOUND"), missing.stderr);
});

t("audit-file: the binary export and the JSON entries; a tampered file is 1", async () => {
  const bin = join(work, "ledger.bin");
  writeFileSync(bin, await ally.exportLedger(r));
  const fromBytes = await run(["audit-file", bin, "--wallet-id", r.id, "--json"]);
  equal([fromBytes.code, fromBytes.json?.ok, fromBytes.json?.entries], [0, true, 31], fromBytes.stderr);
  const entries = await ally.ledger(r);
  const file = join(work, "ledger.json");
  writeFileSync(file, JSON.stringify(entries));
  equal((await run(["audit-file", file])).code, 0, "JSON entries");
  entries[3].amount += 1;
  writeFileSync(file, JSON.stringify(entries));
  const edited = await run(["audit-file", file, "--json"]);
  equal([edited.code, edited.json?.ok], [1, false], "an edited entry");
  equal((await run(["audit-file", bin, "--wallet-id", "rs_other", "--json"])).code, 1, "another wallet's ledger");
});

t("check-credits: the daily job's report", async () => {
  const checked = await run(["check-credits", "--json"]);
  equal(checked.code, 0, checked.stderr);
  ok(checked.json.checked >= 2, JSON.stringify(checked.json));
});

t("commissions run: interrupted by SIGINT (exit 130, nothing lost), resumed by the same command", async () => {
  const resellers = [];
  for (let i = 0; i < 120; i++) {
    const s = await ally.make().user(100 + i).company(`Seller ${i}`).create();
    await ally.setCommissionRate(s, "0.10");
    const client = await ally.clients.make().name(`Client ${i}`).reseller(s).create();
    resellers.push({ s, client });
  }
  let n = 0;
  for (const { client } of resellers) {
    for (let k = 0; k < 10; k++) await ally.payments.record({ id: `pay-${n++}`, clientId: client.id, amount: "100.00", at: `2026-03-${String(1 + k).padStart(2, "0")}` });
  }
  const period = ["--start", "2026-03-01", "--end", "2026-04-01"];
  let signalled = false;
  const first = await run(["commissions", "run", ...period, "--progress", "--json"], {
    onStderr(line, child) {
      if (!signalled && line.startsWith("record")) {
        signalled = true;
        child.kill("SIGINT");
      }
    },
  });
  equal([first.code, first.json], [130, { interrupted: true }], `interrupted: ${first.stderr.slice(-300)}`);
  ok(/run the same command again to resume/.test(first.stderr), first.stderr.slice(-200));
  const resumed = await run(["commissions", "run", ...period, "--json"]);
  equal([resumed.code, resumed.json?.payments, resumed.json?.lines, resumed.json?.total], [0, 1200, 1200, "12000.00"], `resumed: ${resumed.stderr}`);
  ok(resumed.json.recorded > 0 && resumed.json.recorded < 1200, `the rest recorded now: ${resumed.json.recorded}`);
  const again = await run(["commissions", "run", ...period, "--json"]);
  equal([again.code, again.json?.recorded, again.json?.adjusted], [0, 0, 0], "a third run records nothing");
  const reconciled = await ally.reconcile("2026-03-01", "2026-04-01");
  equal([reconciled.expectedLines, reconciled.recordedLines, reconciled.matched], [1200, 1200, 1200], "and the records reconcile");
});

t("commissions report: every reseller's figures as CSV", async () => {
  const out = join(work, "report.csv");
  const written = await run(["commissions", "report", "--start", "2026-03-01", "--end", "2026-04-01", "--out", out]);
  equal(written.code, 0, written.stderr);
  const [header, ...rows] = readFileSync(out, "utf8").trim().split("\n");
  ok(header.split(",").includes("resellerId") && header.split(",").includes("totalCommission"), header);
  const seller = rows.find((row) => row.includes("Seller 7,"));
  ok(seller && seller.includes("100.00"), `a seller's commission: ${seller}`);
  const json = await run(["commissions", "report", "--start", "2026-03-01", "--end", "2026-04-01", "--json"]);
  equal(json.json.filter((row) => row.totalCommission === "100.00").length, 120, "120 sellers at 10 % of 1 000.00");
});

t("exit codes: 2 for usage, 3 when the storage fails", async () => {
  equal((await run(["nonsense"])).code, 2, "an unknown command");
  equal((await run(["commissions", "run"])).code, 2, "a period is needed");
  equal((await run(["audit-wallet", r.id, "--colour"])).code, 2, "an unknown option");
  const dead = await new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, "check-credits", "--database", "postgres://x@127.0.0.1:1/x"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stderr }));
  });
  equal(dead.code, 3, dead.stderr);
  ok(dead.stderr.startsWith("STORAGE_FAILED"), dead.stderr);
});

const summary = await h.run();
report(summary, console.log);
ally.free();
await pool.end();
cluster.stop();
process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
