// Starts a real workerd on a loopback port with the suite as a worker, asks it to run the suite,
// prints the result and stops it.
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const work = join(here, ".tmp", "workerd");
mkdirSync(work, { recursive: true });

const freePort = () =>
  new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });

const rel = (path) => relative(work, path);
const pkg = JSON.parse(readFileSync(join(root, "pkg/package.json"), "utf8"));
// The package's own exports map decides the entries; module names mirror the specifiers, so the
// entries' relative imports resolve as they would in a bundle.
const entry = pkg.exports["."].workerd.default;
const pricingEntry = pkg.exports["./pricing"].workerd.default;
const modules = [
  ["worker.mjs", "esModule", join(here, "workerd-worker.mjs")],
  ["suite.mjs", "esModule", join(here, "suite.mjs")],
  ["harness.mjs", "esModule", join(here, "harness.mjs")],
  ["host-storage.mjs", "esModule", join(here, "host-storage.mjs")],
  ["storage-conformance.mjs", "esModule", join(here, "storage-conformance.mjs")],
  ["ally-engine", "esModule", join(root, "pkg", entry)],
  ["web/ally_engine.js", "esModule", join(root, "pkg/web/ally_engine.js")],
  ["ally_engine_bg.wasm", "wasm", join(root, "pkg/ally_engine_bg.wasm")],
  ["ally-engine/pricing", "esModule", join(root, "pkg", pricingEntry)],
  ["ally-engine/web/ally_engine.js", "esModule", join(root, "pkg/pricing/web/ally_engine.js")],
  ["ally-engine/ally_engine_bg.wasm", "wasm", join(root, "pkg/pricing/ally_engine_bg.wasm")],
];
const port = await freePort();
const config = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .suite)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const suite :Workerd.Worker = (
  modules = [
${modules.map(([name, kind, path]) => `    (name = "${name}", ${kind} = embed "${rel(path)}")`).join(",\n")}
  ],
  compatibilityDate = "2025-09-01",
  compatibilityFlags = ["nodejs_compat"],
);
`;
const configPath = join(work, "config.capnp");
writeFileSync(configPath, config);

const workerd = spawn(join(root, "node_modules/.bin/workerd"), ["serve", configPath, "--verbose"], { stdio: ["ignore", "inherit", "inherit"] });
let exitCode = 1;
try {
  let response;
  for (let attempt = 0; attempt < 100 && !response; attempt++) {
    try {
      response = await fetch(`http://127.0.0.1:${port}/`);
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (!response) throw new Error("workerd did not answer on its port");
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`workerd answered ${response.status}: ${text.slice(0, 2000)}`);
  }
  for (const line of body.lines) console.log(line);
  exitCode = body.summary.failed === 0 && body.summary.passed > 0 ? 0 : 1;
} catch (error) {
  console.error(`[workerd] ${error.message}`);
  console.log("[workerd] 0 passed, 1 failed");
} finally {
  workerd.kill("SIGTERM");
}
process.exit(exitCode);
