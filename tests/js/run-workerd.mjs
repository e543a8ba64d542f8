// Starts a real workerd on a loopback port with the suite as a worker, asks it to run the suite,
// prints the result and stops it.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fetchWhenUp, glueModules, startWorkerd } from "./loopback.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");

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
  ["wallet-state.mjs", "esModule", join(here, "wallet-state.mjs")],
  ["combine.mjs", "esModule", join(here, "combine.mjs")],
  ["ally-engine", "esModule", join(root, "pkg", entry)],
  ["web/ally_engine.js", "esModule", join(root, "pkg/web/ally_engine.js")],
  ...glueModules("web/ally_engine.js", join(root, "pkg/web/ally_engine.js")),
  ["ally_engine_bg.wasm", "wasm", join(root, "pkg/ally_engine_bg.wasm")],
  ["ally-engine/pricing", "esModule", join(root, "pkg", pricingEntry)],
  ["ally-engine/web/ally_engine.js", "esModule", join(root, "pkg/pricing/web/ally_engine.js")],
  ...glueModules("ally-engine/web/ally_engine.js", join(root, "pkg/pricing/web/ally_engine.js")),
  ["ally-engine/ally_engine_bg.wasm", "wasm", join(root, "pkg/pricing/ally_engine_bg.wasm")],
];
const workerd = await startWorkerd({ work: join(here, ".tmp", "workerd"), modules, compatibilityFlags: ["nodejs_compat"], verbose: true });
let exitCode = 1;
try {
  const response = await fetchWhenUp(`http://127.0.0.1:${workerd.port}/`);
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
  workerd.stop();
}
process.exit(exitCode);
