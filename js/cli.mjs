#!/usr/bin/env node
// The operator's command: `npx ally-engine <command>`. Audits a stored wallet (PostgreSQL) or an
// exported ledger file end to end, runs the daily credit check, runs a commission period (with a
// progress bar; Ctrl-C stops it, and the same command resumes it), and writes a period's report
// as CSV. Exit codes: 0 done, 1 an audit found violations, 2 a usage error, 3 the engine or the
// storage failed, 130 interrupted. `--json` prints one JSON document on stdout for scripts.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createRequire } from "node:module";
import { Ally, AllyError, validateLedger } from "./ally_engine.cjs";

const require = createRequire(import.meta.url);
const EXIT = { ok: 0, findings: 1, usage: 2, failed: 3, interrupted: 130 };

const USAGE = `Usage: ally-engine <command> [options]

Commands:
  audit-wallet <reseller-id>        replay a stored wallet end to end, its checkpoint included
  audit-file <file>                 validate an exported ledger (exportLedger bytes, or a JSON array)
  check-credits                     the daily job: low-credit notices and the outbox's retries
  commissions run --start D --end D record a period's commission (resumable)
  commissions report --start D --end D [--out file.csv]
                                    every reseller's commission for a period, as CSV

Options:
  --database URL    PostgreSQL (default: $DATABASE_URL)
  --schema NAME     the engine's schema (default: ally)
  --config FILE     the engine's config as JSON (the service's own: plans, tiers, thresholds)
  --wallet-id ID    audit-file: every entry must belong to this wallet
  --json            one JSON document on stdout
  --progress        progress lines on stderr even when it is not a terminal
  -h, --help        this text
`;

class Usage extends Error {}

function parse(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      database: { type: "string" },
      schema: { type: "string" },
      config: { type: "string" },
      "wallet-id": { type: "string" },
      start: { type: "string" },
      end: { type: "string" },
      out: { type: "string" },
      json: { type: "boolean" },
      progress: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  return { options: values, positionals };
}

/** An engine on the PostgreSQL database the options name. */
async function engine(options) {
  const url = options.database ?? process.env.DATABASE_URL;
  if (!url) throw new Usage("no database: pass --database or set DATABASE_URL");
  let pg;
  try {
    pg = require("pg");
  } catch {
    throw new Usage("this command needs the pg package: npm install pg");
  }
  const { postgresStorage } = require("./postgres.cjs");
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const config = options.config ? JSON.parse(readFileSync(options.config, "utf8")) : undefined;
  const ally = new Ally({ storage: postgresStorage(pool, { schema: options.schema ?? "ally" }), ...(config ? { config } : {}) });
  return { ally, close: () => pool.end() };
}

/** A progress bar on a terminal, plain lines elsewhere when asked for, else nothing. */
function progressReporter(options) {
  const tty = process.stderr.isTTY;
  if (!tty && !options.progress) return () => {};
  let last = 0;
  return ({ phase, done, total }) => {
    const now = Date.now();
    if (tty) {
      const width = 30;
      const filled = total > 0 ? Math.round((width * done) / total) : 0;
      process.stderr.write(`\r${phase.padEnd(8)} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}`);
    } else if (now - last >= 200 || done === total) {
      process.stderr.write(`${phase} ${done}/${total}\n`);
      last = now;
    }
  };
}

const csvCell = (value) => {
  const text = value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\n\r]/.test(text) || /^[=+\-@]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

function toCsv(rows) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  return `${[columns.map(csvCell).join(","), ...rows.map((row) => columns.map((c) => csvCell(row[c])).join(","))].join("\n")}\n`;
}

function needPeriod(options) {
  if (!options.start || !options.end) throw new Usage("this command needs --start and --end (YYYY-MM-DD)");
  return [options.start, options.end];
}

async function main(argv) {
  const { options, positionals } = parse(argv);
  const [command, sub, ...rest] = positionals;
  if (options.help || !command) {
    process.stdout.write(USAGE);
    return command ? EXIT.ok : EXIT.usage;
  }
  const print = (human, json) => process.stdout.write(options.json ? `${JSON.stringify(json)}\n` : `${human}\n`);

  if (command === "audit-file") {
    if (!sub || rest.length > 0) throw new Usage("audit-file takes one file");
    const bytes = readFileSync(sub);
    const entries = bytes.subarray(0, 7).toString("latin1") === "ALLYLDG" ? new Uint8Array(bytes) : JSON.parse(bytes.toString("utf8"));
    const report = validateLedger(entries, options["wallet-id"] ? { walletId: options["wallet-id"] } : undefined);
    print(`${report.ok ? "ok" : "VIOLATIONS"}: ${report.entries} entries, balance ${report.balance}${report.violations.map((v) => `\n  #${v.index} ${v.code}: ${v.message}`).join("")}`, report);
    return report.ok ? EXIT.ok : EXIT.findings;
  }

  const { ally, close } = await engine(options);
  try {
    if (command === "audit-wallet") {
      if (!sub || rest.length > 0) throw new Usage("audit-wallet takes one reseller id");
      const report = await ally.auditWallet(sub);
      const checkpoint = report.checkpoint ? `checkpoint at ${report.checkpoint.length} ${report.checkpoint.matches ? "matches" : "DOES NOT MATCH"}` : "no checkpoint";
      print(`${report.ok ? "ok" : "VIOLATIONS"}: ${report.entries} entries, balance ${report.balance}, ${checkpoint}${report.violations.map((v) => `\n  #${v.index} ${v.code}: ${v.message}`).join("")}`, report);
      return report.ok ? EXIT.ok : EXIT.findings;
    }
    if (command === "check-credits") {
      if (sub) throw new Usage("check-credits takes no argument");
      const report = await ally.checkCredits();
      print(`checked ${report.checked}, notified ${report.notified}, retried ${report.retried}, failed ${report.failed}`, report);
      return EXIT.ok;
    }
    if (command === "commissions" && sub === "run") {
      const [start, end] = needPeriod(options);
      const show = progressReporter(options);
      let interrupted = false;
      const stop = () => {
        interrupted = true;
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      try {
        const summary = await ally.commissions.process(start, end, {
          onProgress(progress) {
            // Throwing stops the run between writes: what is recorded stays, and the same
            // command records the rest.
            if (interrupted) throw new Error("interrupted");
            show(progress);
          },
        });
        if (process.stderr.isTTY) process.stderr.write("\n");
        print(`${summary.payments} payments, ${summary.lines} lines (${summary.recorded} recorded now, ${summary.adjusted} adjusted, ${summary.reversed} reversed), ${summary.approved} approved, total ${summary.total}`, summary);
        return EXIT.ok;
      } catch (error) {
        if (!interrupted) throw error;
        if (process.stderr.isTTY) process.stderr.write("\n");
        process.stderr.write("interrupted: what was recorded stays; run the same command again to resume\n");
        if (options.json) process.stdout.write(`${JSON.stringify({ interrupted: true })}\n`);
        return EXIT.interrupted;
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
    }
    if (command === "commissions" && sub === "report") {
      const [start, end] = needPeriod(options);
      const rows = await ally.allResellersCommission(start, end);
      const csv = toCsv(rows.map(({ byRule, ...row }) => ({ ...row, byRule })));
      if (options.out) writeFileSync(options.out, csv);
      else if (!options.json) process.stdout.write(csv);
      if (options.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
      else if (options.out) process.stderr.write(`${rows.length} resellers written to ${options.out}\n`);
      return EXIT.ok;
    }
    throw new Usage(`unknown command: ${[command, sub].filter(Boolean).join(" ")}`);
  } finally {
    ally.free();
    await close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    if (error instanceof Usage || error?.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" || error?.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      process.stderr.write(`${error.message}\n\n${USAGE}`);
      process.exit(EXIT.usage);
    }
    if (error instanceof AllyError) {
      process.stderr.write(`${error.code}: ${error.message}\n`);
      process.exit(EXIT.failed);
    }
    process.stderr.write(`${error?.stack ?? error}\n`);
    process.exit(EXIT.failed);
  },
);
