// Headless Chromium (Debian's, driven by playwright-core): runs the shared suite in a page, then
// drives the www/ pricing preview as a person would and checks the totals it shows.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "../../scripts/serve.mjs";
import { Checks } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const shots = join(here, ".tmp");
mkdirSync(shots, { recursive: true });

const checks = new Checks("chromium");
const check = (...args) => checks.check(...args);

const server = await serve(0);
const base = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(`${base}/tests/js/browser.html`);
  await page.waitForFunction(() => window.__summary, null, { timeout: 60000 });
  const { summary, lines } = await page.evaluate(() => ({ summary: window.__summary, lines: window.__lines }));
  for (const line of lines.slice(0, -1)) console.log(line);
  checks.passed += summary.passed;
  checks.failed += summary.failed;

  await page.goto(`${base}/www/`);
  await page.waitForSelector("body[data-state=ready]");
  const read = () => page.evaluate(() => ({
    total: document.querySelector("#total").textContent,
    money: document.querySelector("#money").textContent,
    fingerprint: document.querySelector("#fingerprint").textContent,
    verified: document.querySelector("#verified").textContent,
    rows: document.querySelectorAll("#quote tbody tr").length,
  }));
  const platinum = await read();
  check("platinum totals", platinum.total === "3,850" && platinum.money === "38.50 USD" && platinum.rows === 3, JSON.stringify(platinum));
  check("the page re-verifies its quote", platinum.verified === "genuine", platinum.verified);
  await page.selectOption("#tier", "gold");
  const gold = await read();
  check("changing the tier re-prices", gold.total === "4,675" && gold.money === "46.75 USD", JSON.stringify(gold));
  check("a new fingerprint", /^[0-9a-f]{64}$/.test(gold.fingerprint) && gold.fingerprint !== platinum.fingerprint, gold.fingerprint);
  await page.selectOption("#tier", "standard");
  check("standard totals", (await read()).total === "5,500");
  await page.fill("input[name=enterprise]", "1");
  await page.waitForSelector("body[data-state=error]");
  const error = await page.textContent("#error");
  check("a restricted product is refused with its code", error.startsWith("TIER_RESTRICTED"), error);
  await page.selectOption("#tier", "platinum");
  await page.waitForSelector("body[data-state=ready]");
  check("platinum may sell enterprise", (await read()).total === "21,350");
  await page.screenshot({ path: join(shots, "www.png"), fullPage: true });
  check("no page errors", errors.length === 0, errors.join("\n"));
} catch (error) {
  checks.crashed(error);
} finally {
  await browser.close();
  server.close();
}
process.exit(checks.close());
