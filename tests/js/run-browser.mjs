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
  // A band's flat fee and a package: 7 agents are 2,000 + 2 × 150 + 500 = 2,800 (1,960 at 30 %
  // off); 2,500 calls, the first 1,000 free, are 2 blocks of 250 = 500 (350).
  await page.fill("input[name=support]", "7");
  await page.fill("input[name=api]", "2500");
  const fees = await read();
  check("a flat fee and a package are priced", fees.total === "23,660" && fees.rows === 6 && fees.verified === "genuine", JSON.stringify(fees));
  const shown = await page.evaluate(() => [...document.querySelectorAll("#quote tbody tr")].map((r) => r.cells[2].textContent));
  check("the breakdown shows the fee and the blocks", shown.includes("5 × 0 + 2,000 + 2 × 150 + 500") && shown.includes("2 × 1,000 (1,000 free)"), JSON.stringify(shown));
  // A line of 0 agents still bills the desk's flat fee: 2,000 at 30 % off.
  await page.fill("input[name=support]", "0");
  check("a line of 0 units bills a flat first band", (await read()).total === "23,100");
  await page.screenshot({ path: join(shots, "www.png"), fullPage: true });

  // The dashboard: seeded in the page, every figure from the engine; a top-up made in the page
  // changes the balance, the trend, and the admin's credits outstanding.
  await page.goto(`${base}/www/dashboard.html`);
  await page.waitForSelector("body[data-state=ready]", { timeout: 60000 });
  const board = () => page.evaluate(() => {
    const bars = (id) => [...document.querySelectorAll(`#${id} svg rect`)].map((r) => ({ label: r.dataset.label, value: Number(r.dataset.value), height: Number(r.getAttribute("height")) }));
    const text = (id) => document.querySelector(`#${id}`).textContent;
    return {
      balance: text("balance"), tier: text("tier"), health: text("health"), band: text("band"), outstanding: text("outstanding"), resellers: text("reseller-count"),
      trend: bars("trend"), healthBars: bars("health-chart"), tiers: bars("tier-chart"),
      transactions: [...document.querySelectorAll("#transactions tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent)),
      top: [...document.querySelectorAll("#top tbody tr")].map((tr) => tr.cells[0].textContent),
      alerts: [...document.querySelectorAll("#alerts tbody tr")].map((tr) => [tr.cells[0].textContent, tr.dataset.band]),
    };
  });
  const first = await board();
  check("dashboard: the reseller's balance (its last entry's) and tier", first.balance === first.transactions[0][5] && first.balance !== "" && first.tier === "platinum", JSON.stringify([first.balance, first.transactions[0], first.tier]));
  check("dashboard: the credit trend chart has a bar per month", first.trend.map((b) => b.label).join() === "2026-06,2026-07,2026-08,2026-09,2026-10,2026-11" && first.trend.map((b) => b.value).join() === "60000,40000,50000,45000,60000,55000" && first.trend.every((b) => b.height > 0), JSON.stringify(first.trend));
  const contributions = first.healthBars.reduce((sum, b) => sum + Math.round(b.value * 100), 0);
  check("dashboard: the health chart has the 7 components and they add up to the score", first.healthBars.length === 7 && contributions === Math.round(Number(first.health) * 100), JSON.stringify([first.health, first.healthBars]));
  check("dashboard: the last 10 transactions, newest first", first.transactions.length === 10 && Number(first.transactions[0][0]) > Number(first.transactions[9][0]), JSON.stringify(first.transactions.slice(0, 2)));
  check("dashboard: tier snapshot chart", first.tiers.map((b) => `${b.label}:${b.value}`).join() === "gold:2,platinum:1,standard:2", JSON.stringify(first.tiers));
  check("dashboard: top resellers, most credits first", first.top[0] === "Elite Global" && first.top.length === 5, JSON.stringify(first.top));
  check("dashboard: health alerts name the partner that fell a band", first.alerts.some(([name, band]) => name === "Bluebird Telecom" && band === "critical") && !first.alerts.some(([name]) => name === "Elite Global" || name === "Northwind Partners"), JSON.stringify(first.alerts));
  check("dashboard: a healthy partner's score", first.band.startsWith("healthy") && Number(first.health) >= 70, JSON.stringify([first.health, first.band]));
  const number = (text) => Number(text.replace(/,/g, ""));
  await page.fill("#amount", "2500");
  await page.click("#topup button");
  await page.waitForFunction((before) => document.querySelector("#balance").textContent !== before && document.body.dataset.state === "ready", first.balance);
  const after = await board();
  check("dashboard: a top-up changes the balance", number(after.balance) === number(first.balance) + 2500, `${first.balance} → ${after.balance}`);
  check("dashboard: … and this month's bar of the trend", after.trend[5].value === first.trend[5].value + 2500 && after.trend[5].height >= first.trend[5].height && after.trend.slice(0, 5).every((b, i) => b.value === first.trend[i].value), JSON.stringify([first.trend[5], after.trend[5]]));
  check("dashboard: … and the credits outstanding", number(after.outstanding) === number(first.outstanding) + 2500, `${first.outstanding} → ${after.outstanding}`);
  check("dashboard: … and the newest transaction", after.transactions[0][2] === "top-up" && after.transactions[0][4] === "+2,500", JSON.stringify(after.transactions[0]));
  await page.selectOption("#reseller", { label: "Harbor Digital (standard)" });
  await page.waitForFunction(() => document.querySelector("#tier").textContent === "standard");
  const harbor = await board();
  check("dashboard: another reseller's own figures", harbor.trend.map((b) => b.value).join() === "8000,0,0,5000,0,0", JSON.stringify(harbor.trend));
  await page.fill("#amount", "0.5");
  await page.click("#topup button");
  await page.waitForSelector("body[data-state=error]");
  const refused = await page.textContent("#error");
  check("dashboard: a fractional top-up is refused with its code, and nothing changes", refused.startsWith("INVALID_INPUT") && (await board()).balance === harbor.balance, refused);
  await page.screenshot({ path: join(shots, "dashboard.png"), fullPage: true });
  check("no page errors", errors.length === 0, errors.join("\n"));
} catch (error) {
  checks.crashed(error);
} finally {
  await browser.close();
  server.close();
}
process.exit(checks.close());
