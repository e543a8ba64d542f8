// The partner dashboard. A demo network is seeded into the engine's in-memory storage when the
// page loads; every figure shown is then asked of the engine (balances, trends, rankings, health
// scores). This file only seeds, asks and draws.
import init, { Ally, AllyError } from "../pkg/web.js";

const MONTHS = ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"];
const PERIOD = ["2026-06-01", "2026-11-30"];
const NOW = Date.UTC(2026, 10, 30, 18);

/** The demo network: each reseller's monthly activity (top-ups, provisions, new clients) and the
 * figures a CRM would hold for it (retention, SLA, satisfaction). */
const NETWORK = [
  { company: "Elite Global", tier: "platinum", topUps: [60000, 40000, 50000, 45000, 60000, 55000], spend: [38000, 41000, 47000, 52000, 58000, 61000], signups: [3, 2, 4, 3, 5, 4], crm: { retentionRate: "0.94", slaCompliance: "0.98", satisfaction: "8.8", activeDays: [21, 22] } },
  { company: "Northwind Partners", tier: "gold", topUps: [20000, 15000, 15000, 20000, 20000, 20000], spend: [14000, 15000, 16000, 18000, 19000, 21000], signups: [1, 2, 1, 2, 4, 3], crm: { retentionRate: "0.91", slaCompliance: "0.97", satisfaction: "8.6", activeDays: [19, 20] } },
  { company: "Bluebird Telecom", tier: "gold", topUps: [30000, 25000, 20000, 15000, 16000, 0], spend: [26000, 24000, 21000, 17000, 17000, 600], signups: [2, 1, 1, 0, 1, 0], crm: { retentionRate: "0.86", slaCompliance: "0.93", satisfaction: "7.6", activeDays: [18, 4] } },
  { company: "Cedar Networks", tier: "standard", topUps: [5000, 5000, 10000, 5000, 10000, 10000], spend: [4000, 4500, 6000, 7000, 8000, 9500], signups: [0, 1, 1, 1, 2, 1], crm: { retentionRate: "0.83", slaCompliance: "0.92", satisfaction: "7.4", activeDays: [15, 15] } },
  { company: "Harbor Digital", tier: "standard", topUps: [8000, 0, 0, 5000, 0, 0], spend: [5000, 2000, 1000, 3000, 1500, 400], signups: [1, 0, 0, 1, 0, 0], crm: { retentionRate: "0.71", slaCompliance: "0.81", satisfaction: "5.6", activeDays: [6, 3] } },
];

const $ = (selector) => document.querySelector(selector);
const fmt = new Intl.NumberFormat("en-US");
const SVG = "http://www.w3.org/2000/svg";

let now = Date.UTC(2026, 5, 1, 12);
let ally;
const resellers = [];

/** A day of a month as a time, at noon UTC. */
const day = (month, d) => {
  const [y, m] = month.split("-").map(Number);
  return Date.UTC(y, m - 1, d, 12);
};

async function seed() {
  ally = new Ally({ clock: () => new Date(now), config: { lowCreditThreshold: 1000 } });
  for (const [i, spec] of NETWORK.entries()) {
    now = day(MONTHS[0], 1);
    const reseller = await ally.make().user(i + 1).company(spec.company).email(`ops${i + 1}@partners.example`).tier(spec.tier).create();
    resellers.push({ ...spec, id: reseller.id, refid: reseller.refid });
    for (const [m, month] of MONTHS.entries()) {
      now = day(month, 2 + i);
      if (spec.topUps[m] > 0) await ally.addCredits(reseller, spec.topUps[m], { memo: `Invoice ${month}` });
      // The month's spend as four provisions through the month.
      const quarter = Math.floor(spec.spend[m] / 4);
      for (const [k, d] of [6, 12, 18, 24].entries()) {
        const cost = k === 3 ? spec.spend[m] - 3 * quarter : quarter;
        now = day(month, Math.min(d + i, 28));
        if (month === MONTHS[5] && now > NOW) break;
        if (cost > 0) await ally.provision(reseller.id, cost, `Licences for ${month}`);
      }
      for (let c = 0; c < spec.signups[m]; c++) {
        now = day(month, 3 + c);
        await ally.clients.make().name(`${spec.company} client ${month}-${c + 1}`).reseller(reseller).create();
      }
    }
  }
  for (let c = 0; c < 4; c++) {
    now = day(MONTHS[c + 1], 9);
    await ally.clients.make().name(`Direct customer ${c + 1}`).create();
  }
  now = NOW;
}

/** A bar chart as SVG: one `rect` per value, labelled, each carrying its value as data. */
function barChart(figure, entries, { max, format = (v) => fmt.format(v) } = {}) {
  const width = 640;
  const height = 220;
  const top = 20;
  const bottom = 40;
  const slot = width / Math.max(entries.length, 1);
  const peak = Math.max(max ?? 0, ...entries.map(([, v]) => v), 1);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  for (const [i, [label, value]] of entries.entries()) {
    const h = ((height - top - bottom) * value) / peak;
    const rect = document.createElementNS(SVG, "rect");
    Object.entries({ x: i * slot + slot * 0.15, y: height - bottom - h, width: slot * 0.7, height: h, rx: 3 }).forEach(([k, v]) => rect.setAttribute(k, v));
    rect.dataset.label = label;
    rect.dataset.value = String(value);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${label}: ${format(value)}`;
    rect.append(title);
    const caption = document.createElementNS(SVG, "text");
    Object.entries({ x: i * slot + slot / 2, y: height - bottom + 16, "text-anchor": "middle" }).forEach(([k, v]) => caption.setAttribute(k, v));
    caption.textContent = label;
    const figureText = document.createElementNS(SVG, "text");
    Object.entries({ x: i * slot + slot / 2, y: height - bottom - h - 5, "text-anchor": "middle", class: "value" }).forEach(([k, v]) => figureText.setAttribute(k, v));
    figureText.textContent = format(value);
    svg.append(rect, caption, figureText);
  }
  figure.replaceChildren(svg);
}

/** The month's health metrics of a reseller: revenue, acquisitions and growth from the engine's
 * figures, the rest from what a CRM would hold for it. */
async function metrics(reseller, month, previousMonth) {
  const [first, last] = [`${month}-01`, `${month}-${new Date(Date.UTC(+month.slice(0, 4), +month.slice(5), 0)).getUTCDate()}`];
  const signups = await ally.clients.analytics().forReseller(reseller.id).growth(first, last);
  const ledger = await ally.ledger(reseller.id);
  const spent = (m) => ledger.filter((e) => e.kind === "debit" && e.at.startsWith(m)).reduce((sum, e) => sum + e.amount, 0);
  const before = spent(previousMonth);
  // Growth as a rate with 4 decimals, computed in whole hundredths of a percent.
  const growth = before === 0 ? 0 : Math.max(-10000, Math.round(((spent(month) - before) * 10000) / before)) / 10000;
  const { activeDays, ...crm } = reseller.crm;
  return {
    // Demo revenue: what its clients paid for the licences it provisioned, at 40 times cost.
    revenue: ally.creditsToMoney(spent(month) * 40),
    newCustomers: signups,
    growthRate: growth,
    activeDays: activeDays[MONTHS.indexOf(month) - 4],
    ...crm,
  };
}

/** Records October's and November's scores: the engine keeps the history, and raises an alert
 * when a partner crosses into a worse band. */
async function scoreHealth() {
  for (const reseller of resellers) {
    for (const m of [4, 5]) {
      now = Math.min(day(MONTHS[m], 28), NOW);
      await ally.health.record(reseller.id, await metrics(reseller, MONTHS[m], MONTHS[m - 1]), { period: MONTHS[m] });
    }
  }
  now = NOW;
}

/** Chart labels of the seven components. */
const SHORT = { revenuePerformance: "revenue", customerAcquisition: "acquisition", customerRetention: "retention", growthTrajectory: "growth", engagement: "engagement", operationalExcellence: "operations", partnerSatisfaction: "satisfaction" };
const BAND_TEXT = { healthy: "healthy", atRisk: "at risk", critical: "critical" };

async function renderReseller() {
  const reseller = resellers.find((r) => r.id === $("#reseller").value);
  const own = ally.asReseller(reseller.id);
  const stats = await own.analytics().resellerStats(reseller.id);
  $("#balance").textContent = fmt.format(stats.balance);
  $("#tier").textContent = stats.tier;
  $("#discount").textContent = `${(Number(stats.discount) * 100).toFixed(0)} % off base prices`;
  const trend = await own.analytics().monthly().creditTrends(...PERIOD);
  barChart($("#trend"), Object.entries(trend));
  const current = (await ally.health.history(reseller.id)).at(-1);
  $("#health").textContent = current.score;
  $("#band").textContent = `${BAND_TEXT[current.band]}${current.trend ? `, ${current.trend.direction} (${current.trend.change})` : ""}`;
  $("#health").dataset.band = current.band;
  barChart(
    $("#health-chart"),
    current.components.map((c) => [SHORT[c.component], Number(c.contribution)]),
    { max: 25, format: (v) => v.toFixed(2) },
  );
  const body = $("#transactions tbody");
  body.replaceChildren();
  for (const entry of await own.transactions(reseller.id, { limit: 10 })) {
    const row = body.insertRow();
    const cells = [entry.sequence, entry.at.slice(0, 10), entry.kind === "credit" ? "top-up" : "provision", entry.memo ?? "", `${entry.kind === "credit" ? "+" : "−"}${fmt.format(entry.amount)}`, fmt.format(entry.balanceAfter)];
    cells.forEach((value, i) => {
      const cell = row.insertCell();
      cell.textContent = String(value);
      if (i >= 4) cell.className = "num";
    });
  }
}

async function renderAdmin() {
  const analytics = ally.analytics();
  $("#outstanding").textContent = fmt.format(await analytics.totalCreditsDistributed());
  const snapshot = await analytics.tierSnapshot();
  $("#reseller-count").textContent = fmt.format(Object.values(snapshot).reduce((a, b) => a + b, 0));
  barChart($("#tier-chart"), Object.entries(snapshot));
  const body = $("#top tbody");
  body.replaceChildren();
  for (const row of await analytics.topResellers(5, ...PERIOD)) {
    const tr = body.insertRow();
    [row.company, row.tier, fmt.format(row.acquisitions), fmt.format(row.creditVolume), fmt.format(row.balance)].forEach((value, i) => {
      const cell = tr.insertCell();
      cell.textContent = value;
      if (i >= 2) cell.className = "num";
    });
  }
  const alerts = $("#alerts tbody");
  alerts.replaceChildren();
  for (const alert of await ally.health.alerts({ status: "open" })) {
    const reseller = resellers.find((r) => r.id === alert.resellerId);
    const tr = alerts.insertRow();
    tr.dataset.band = alert.band;
    [reseller.company, alert.period, alert.previousScore ?? "—", alert.score, `${alert.fromBand ? BAND_TEXT[alert.fromBand] : "first score"} → ${BAND_TEXT[alert.band]}`].forEach((value, i) => {
      const cell = tr.insertCell();
      cell.textContent = value;
      if (i === 2 || i === 3) cell.className = "num";
    });
  }
}

async function render() {
  await renderReseller();
  await renderAdmin();
}

function fail(error) {
  $("#error").textContent = error instanceof AllyError ? `${error.code}: ${error.message}` : String(error);
  $("#error").hidden = false;
  document.body.dataset.state = "error";
}

async function topUp(event) {
  event.preventDefault();
  document.body.dataset.state = "busy";
  $("#error").hidden = true;
  try {
    await ally.addCredits($("#reseller").value, Number($("#amount").value), { memo: "Top-up from the dashboard" });
    await render();
    document.body.dataset.state = "ready";
  } catch (error) {
    fail(error);
  }
}

try {
  await init();
  await seed();
  await scoreHealth();
  for (const reseller of resellers) $("#reseller").append(new Option(`${reseller.company} (${reseller.tier})`, reseller.id));
  $("#reseller").addEventListener("change", () => render().then(() => (document.body.dataset.state = "ready"), fail));
  $("#topup").addEventListener("submit", topUp);
  await render();
  document.body.dataset.state = "ready";
} catch (error) {
  fail(error);
}
