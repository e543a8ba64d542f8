// Helpers for the real components the tests start on loopback (workerd, PostgreSQL).
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/**
 * The modules a glue file imports besides the .wasm (its wasm-bindgen snippets: the boundary's
 * codec), named as the glue's relative imports resolve from `name`, the glue's module name.
 */
export function glueModules(name, path) {
  const folder = join(dirname(path), "snippets");
  const base = dirname(name) === "." ? "" : `${dirname(name)}/`;
  return readdirSync(folder, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".js"))
    .map((entry) => {
      const file = join(entry.parentPath ?? entry.path, entry.name);
      return [`${base}snippets/${relative(folder, file).split("\\").join("/")}`, "esModule", file];
    });
}

/**
 * Starts the npm `workerd` binary serving one worker on a free loopback port.
 * `modules` are `[name, "esModule" | "wasm", absolutePath]`; `bindings` are text bindings
 * (`env.NAME` in the worker); the config is written to `work`.
 * Returns `{ port, stop }`.
 */
export async function startWorkerd({ work, modules, bindings = {}, compatibilityFlags = [], verbose = false }) {
  mkdirSync(work, { recursive: true });
  const port = await freePort();
  const flags = compatibilityFlags.map((f) => `"${f}"`).join(", ");
  const config = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .worker)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [
${modules.map(([name, kind, path]) => `    (name = "${name}", ${kind} = embed "${relative(work, path)}")`).join(",\n")}
  ],
  bindings = [
${Object.entries(bindings).map(([name, text]) => `    (name = ${JSON.stringify(name)}, text = ${JSON.stringify(text)})`).join(",\n")}
  ],
  compatibilityDate = "2025-09-01",
  compatibilityFlags = [${flags}],
);
`;
  const configPath = join(work, "config.capnp");
  writeFileSync(configPath, config);
  const args = ["serve", configPath, ...(verbose ? ["--verbose"] : [])];
  const child = spawn(join(root, "node_modules/.bin/workerd"), args, { stdio: ["ignore", "inherit", "inherit"] });
  return { port, stop: () => child.kill("SIGTERM") };
}

/** `fetch` that retries while the server is still starting (up to about 10 s). */
export async function fetchWhenUp(url, init) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (error) {
      if (attempt >= 100) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
