// A Vite-bundled page in headless Chromium: `vite build` bundles tests/js/vite (the shared
// suite importing "ally-engine" and "ally-engine/pricing" by name), `vite preview` serves the
// bundle on loopback, and the page runs the suite.
import { chromium } from "playwright-core";
import { build, preview } from "vite";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Checks } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "..", "target", "vite-page");
const checks = new Checks("vite");
const config = { root: join(here, "vite"), base: "./", logLevel: "warn", build: { outDir, emptyOutDir: true, target: "es2022" }, preview: { host: "127.0.0.1", port: 0, strictPort: false } };

let browser;
let server;
try {
  await build(config);
  const assets = readdirSync(join(outDir, "assets"));
  checks.check("the bundle carries both .wasm modules", assets.filter((name) => name.endsWith(".wasm")).length === 2, assets.join(" "));
  server = await preview(config);
  const base = server.resolvedUrls.local[0];
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base);
  await page.waitForFunction(() => window.__summary, null, { timeout: 120000 });
  const { summary, lines } = await page.evaluate(() => ({ summary: window.__summary, lines: window.__lines }));
  for (const line of lines.slice(0, -1)) console.log(line);
  checks.passed += summary.passed;
  checks.failed += summary.failed;
  checks.check("no page errors", errors.length === 0, errors.join("\n"));
} catch (error) {
  checks.crashed(error);
} finally {
  await browser?.close();
  await server?.close();
}
process.exit(checks.close());
