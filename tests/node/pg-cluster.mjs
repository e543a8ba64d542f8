// A throwaway PostgreSQL cluster for tests and benchmarks: initdb in a temporary folder, started
// with pg_ctl on a free loopback port (as the `postgres` user when running as root), stopped and
// removed after. Needs Debian's `postgresql` package (scripts/test.sh installs it).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, chownSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../js/loopback.mjs";

function binaries() {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => b - a) : [];
  for (const v of versions) {
    const bin = join(root, v, "bin");
    if (existsSync(join(bin, "initdb")) && existsSync(join(bin, "pg_ctl"))) return bin;
  }
  throw new Error("PostgreSQL is not installed (apt-get install -y postgresql)");
}

/**
 * Starts a cluster. Tests run with `fsync=off` (nothing there needs to survive a crash);
 * `{ durable: true }` keeps PostgreSQL's defaults, as a benchmark should.
 */
export async function startPostgres({ durable = false } = {}) {
  const bin = binaries();
  const dir = mkdtempSync(join(tmpdir(), "ally-pg-"));
  const data = join(dir, "data");
  const root = process.getuid?.() === 0;
  const pwent = root ? execFileSync("id", ["-u", "postgres"]).toString().trim() : null;
  if (root) {
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    chownSync(dir, Number(pwent), gid);
  }
  const as = (cmd, args) =>
    root
      ? execFileSync("runuser", ["-u", "postgres", "--", cmd, ...args], { stdio: "pipe" })
      : execFileSync(cmd, args, { stdio: "pipe" });
  as(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]);
  const port = await freePort();
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir}${durable ? "" : " -c fsync=off"} -c max_connections=200`;
  as(join(bin, "pg_ctl"), ["-D", data, "-o", options, "-l", join(dir, "server.log"), "-w", "start"]);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      as(join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.on("exit", stop);
  return { host: "127.0.0.1", port, user: "postgres", database: "postgres", stop };
}
