// The benchmark: the same workloads through the wasm package, the decimal.js peer and native Rust,
// in one run, with medians of several repetitions and the ratios between them. Prints the .wasm
// size too. Run with `npm run bench` (which builds first).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as wasm from "ally-engine";
import * as peer from "./peer.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TIERS = ["standard", "gold", "platinum"];

function rate(runs, ops, body) {
  body(); // warm-up
  const seconds = [];
  for (let r = 0; r < runs; r++) {
    const start = process.hrtime.bigint();
    body();
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  seconds.sort((a, b) => a - b);
  return ops / seconds[Math.floor(runs / 2)];
}

// Workload data shared by both JS sides (native builds the same shapes).
// By `i % 5`: per-unit, volume with a flat fee on its middle band, graduated, graduated with a
// flat fee per band, packages of 10 (every other one with 5 free units). Quantities from 0.
const FEES = { 1: [0, 500, 0], 3: [1000, 500, 250] };
const products = Array.from({ length: 40 }, (_, i) => {
  const fees = FEES[i % 5] ?? [0, 0, 0];
  const bands = [10, 50, null].map((upTo, b) => ({ upTo, unitPrice: 100 - 10 * b + i, ...(fees[b] ? { flatFee: fees[b] } : {}) }));
  const sku = `sku-${String(i).padStart(3, "0")}`;
  if (i % 5 === 0) return { sku, name: `Product ${i}`, basePrice: 1000 + i * 7 };
  if (i % 5 === 4) return { sku, name: `Product ${i}`, pricing: "package", packageSize: 10, packagePrice: 900 + i, ...(i % 2 === 0 ? { freeUnits: 5 } : {}) };
  return { sku, name: `Product ${i}`, pricing: i % 5 === 1 ? "volume" : "graduated", bands };
});
const requests = Array.from({ length: 30 }, (_, q) => ({
  tier: TIERS[q % 3],
  lines: Array.from({ length: 20 }, (_, l) => ({ sku: `sku-${String((l * 2 + q) % 40).padStart(3, "0")}`, quantity: (l * 7 + q) % 61 })),
}));
const prices = new Float64Array(1_000_000);
for (let i = 0; i < prices.length; i++) prices[i] = (i * 7919) % 100003;

// Both sides must agree before their speeds mean anything.
const wasmCatalog = new wasm.Catalog(products);
const peerCatalog = peer.catalog(products);
for (const request of requests) {
  const a = wasm.quote(request, wasmCatalog);
  const b = peer.quote(request, peerCatalog);
  const shape = (q) => JSON.stringify([q.total, q.totalMoney, q.lines.map((l) => [l.sku, l.quantity, l.unitPrice, l.bands, l.packages, l.freeUnits, l.subtotal, l.total])]);
  if (shape(a) !== shape(b)) {
    throw new Error(`wasm and peer disagree on ${JSON.stringify(request)}`);
  }
}
const wasmBatch = wasm.tierCostBatch(prices, "gold");
const peerBatch = peer.tierCostBatch(prices, "gold");
for (let i = 0; i < prices.length; i += 997) {
  if (wasmBatch[i] !== peerBatch[i] || wasm.tierCost(prices[i], "platinum") !== peer.tierCost(prices[i], "platinum")) throw new Error(`disagree at ${prices[i]}`);
}

const singleCalls = 2_000_000;
const singles = (fn) => () => {
  let sum = 0;
  for (let i = 0; i < singleCalls; i++) sum += fn(i % 100003, TIERS[i % 3]);
  return sum;
};
const quotes = (fn, catalog, n) => () => {
  let sum = 0;
  for (let q = 0; q < n; q++) sum += fn(requests[q % requests.length], catalog).total;
  return sum;
};

const results = {
  wasm: {
    tierCost: rate(5, singleCalls, singles(wasm.tierCost)),
    tierCostBatch: rate(7, prices.length, () => wasm.tierCostBatch(prices, "gold")),
    quote: rate(5, 50_000, quotes(wasm.quote, wasmCatalog, 50_000)),
  },
  peer: {
    tierCost: rate(3, singleCalls / 10, () => { for (let i = 0; i < singleCalls / 10; i++) peer.tierCost(i % 100003, TIERS[i % 3]); }),
    tierCostBatch: rate(3, prices.length, () => peer.tierCostBatch(prices, "gold")),
    quote: rate(3, 5_000, quotes(peer.quote, peerCatalog, 5_000)),
  },
};
// provision with in-memory storage, one awaited call after another; then validateLedger over the
// wallet's history (the JS entry walk bounds it at 50 000 entries here; native replays 600 001).
const provisions = 50_000;
const wasmStorage = wasm.memoryStorage();
const wasmAlly = new wasm.Ally({ storage: wasmStorage });
const wasmReseller = await wasmAlly.make().user(1).company("Bench").create();
await wasmAlly.addCredits(wasmReseller, 1e15);
let began = performance.now();
for (let i = 0; i < provisions; i++) await wasmAlly.provision(wasmReseller.id, 1);
results.wasm.provision = provisions / ((performance.now() - began) / 1000);
const peerWallet = peer.wallet("rs_bench");
await peerWallet.addCredits(1e15);
began = performance.now();
for (let i = 0; i < provisions; i++) await peerWallet.provision(1);
results.peer.provision = provisions / ((performance.now() - began) / 1000);
const wasmLedger = await wasmAlly.ledger(wasmReseller);
const timeIt = (body) => { const t = performance.now(); const out = body(); return [out, (performance.now() - t) / 1000]; };
const timeAsync = async (body) => { const t = performance.now(); const out = await body(); return [out, (performance.now() - t) / 1000]; };
const [wasmAudit, wasmAuditSeconds] = timeIt(() => wasm.validateLedger(wasmLedger));
const [peerAudit, peerAuditSeconds] = timeIt(() => peer.validateLedger(peerWallet.entries));
const [peerCross] = timeIt(() => peer.validateLedger(wasmLedger));
if (!wasmAudit.ok || !peerAudit.ok || !peerCross.ok) throw new Error("the benchmark ledgers must validate on both sides (hash encodings agree)");
// Seconds per million entries, so that the three sides compare on one scale.
results.wasm.validateLedgerArray = (wasmAuditSeconds / wasmLedger.length) * 1e6;
results.peer.validateLedgerArray = (peerAuditSeconds / peerWallet.entries.length) * 1e6;

// validateLedger over a million entries, as the binary buffer exportLedger gives: the history
// grows to 1 000 000 entries through the same engine first.
const million = 1_000_000;
for (let i = wasmLedger.length; i < million; i++) await wasmAlly.provision(wasmReseller.id, 1);
const bytes = await wasmAlly.exportLedger(wasmReseller);
const bestOf = (runs, body) => {
  let best = Infinity;
  let out;
  for (let r = 0; r < runs; r++) {
    const [value, seconds] = timeIt(body);
    out = value;
    best = Math.min(best, seconds);
  }
  return [out, best];
};
const [wasmBytesAudit, wasmBytesSeconds] = bestOf(3, () => wasm.validateLedger(bytes));
const [peerBytesAudit, peerBytesSeconds] = bestOf(1, () => peer.validateLedgerBytes(bytes));
if (!wasmBytesAudit.ok || wasmBytesAudit.entries !== million || !peerBytesAudit.ok) {
  throw new Error("the million-entry ledger must validate on both sides");
}
results.wasm.validateLedger = wasmBytesSeconds;
results.peer.validateLedger = peerBytesSeconds;
results.ledgerBytes = bytes.length;

// The first provision of a fresh instance (a restarted process, an edge invocation) on the
// wallet of a million entries and on one of a thousand, over the same storage: it resumes from
// the wallet's checkpoint and replays only the entries after it. Median of fresh instances.
const smallReseller = await wasmAlly.make().user(2).company("Bench small").create();
await wasmAlly.addCredits(smallReseller, 1e15);
for (let i = 1; i < 1_000; i++) await wasmAlly.provision(smallReseller.id, 1);
const coldProvision = async (id) => {
  const seconds = [];
  for (let r = 0; r < 7; r++) {
    const fresh = new wasm.Ally({ storage: wasmStorage });
    const [, s] = await timeAsync(() => fresh.provision(id, 1));
    seconds.push(s);
    fresh.free();
  }
  return seconds.sort((a, b) => a - b)[3];
};
results.wasm.cold1k = await coldProvision(smallReseller.id);
results.wasm.cold1M = await coldProvision(wasmReseller.id);

// The monthly commission run: 1 000 000 payments by 200 000 customers of 10 000 resellers in
// three levels (100 at the top, 900 under them, 9 000 under those), the same data native builds.
const JAN = Date.UTC(2026, 0, 1);
const MONTH = 31 * 86_400_000;
const commissionResellers = Array.from({ length: 10_000 }, (_, i) => ({
  id: `rs_${String(i).padStart(5, "0")}`,
  parent: i < 100 ? null : i < 1000 ? i % 100 : 100 + (i % 900),
  rate: (1000 + (i % 6) * 100) / 10_000,
  approved: i % 50 !== 7,
}));
const hierarchy = {
  resellers: commissionResellers.map((r) => ({
    id: r.id,
    ...(r.parent === null ? {} : { parentId: commissionResellers[r.parent].id }),
    commissionRate: r.rate,
    ...(r.approved ? {} : { status: "suspended" }),
  })),
  customers: {
    reseller: Uint32Array.from({ length: 200_000 }, (_, c) => (c * 7919) % 10_000),
    since: Float64Array.from({ length: 200_000 }, (_, c) => JAN - (c % 24) * MONTH),
  },
};
const paymentCount = 1_000_000;
const columns = {
  customer: new Uint32Array(paymentCount),
  amountMinor: new Float64Array(paymentCount),
  at: new Float64Array(paymentCount),
  status: new Uint8Array(paymentCount),
  kind: new Uint8Array(paymentCount),
};
for (let i = 0; i < paymentCount; i++) {
  columns.customer[i] = (i * 31) % 200_000;
  columns.amountMinor[i] = 1000 + (i % 50_000);
  columns.at[i] = JAN + i * 2000;
  columns.status[i] = i % 41 === 0 ? 1 : 0;
  columns.kind[i] = i % 97 === 3 && i > 0 ? 1 : 0;
}
const commissionPlan = { overrides: ["0.05", "0.02"], holdDays: 14 };
const period = { start: JAN, end: JAN + MONTH };
const [wasmRun, wasmRunSeconds] = bestOf(3, () => wasm.commission(commissionPlan, columns, hierarchy, { ...period, lines: "columns" }));
const [, wasmTotalsSeconds] = bestOf(3, () => wasm.commission(commissionPlan, columns, hierarchy, { ...period, lines: "none" }));
const [peerTotals, peerRunSeconds] = bestOf(1, () =>
  peer.commissionRun({
    payments: columns,
    customers: hierarchy.customers,
    resellers: commissionResellers,
    plan: { overrides: [0.05, 0.02], holdDays: 14 },
    start: period.start,
    end: period.end,
    asOf: period.end,
  }),
);
peerTotals.forEach((t, i) => {
  const w = wasmRun.resellers[i];
  if (w.total !== t.total.div(100).toFixed(2) || w.approved !== t.approved.div(100).toFixed(2)) {
    throw new Error(`commission: wasm and peer disagree on ${w.resellerId}: ${w.total}/${w.approved} vs ${t.total}/${t.approved}`);
  }
});
results.wasm.commission = wasmRunSeconds;
results.wasm.commissionTotalsOnly = wasmTotalsSeconds;
results.peer.commission = peerRunSeconds;
results.commissionLines = wasmRun.lineCount;

// Partner health: 100 000 partners in one batch call, a tenth of them missing two metrics.
const partners = 100_000;
const healthColumns = Object.fromEntries(["revenue", "newCustomers", "retentionRate", "growthRate", "activeDays", "slaCompliance", "satisfaction"].map((k) => [k, new Float64Array(partners)]));
for (let i = 0; i < partners; i++) {
  healthColumns.revenue[i] = ((i * 7919) % 2_000_000) / 100;
  healthColumns.newCustomers[i] = i % 15;
  healthColumns.retentionRate[i] = ((i * 31) % 10_001) / 10_000;
  healthColumns.growthRate[i] = (((i * 17) % 4_001) - 2_000) / 10_000;
  healthColumns.activeDays[i] = i % 10 === 0 ? NaN : i % 31;
  healthColumns.slaCompliance[i] = ((i * 13) % 10_001) / 10_000;
  healthColumns.satisfaction[i] = i % 10 === 0 ? NaN : ((i * 7) % 1_001) / 100;
}
const [wasmHealth, wasmHealthSeconds] = bestOf(5, () => wasm.healthScoreBatch(healthColumns));
const [peerHealth, peerHealthSeconds] = bestOf(1, () => peer.healthBatch(healthColumns, partners));
for (let i = 0; i < partners; i++) {
  if (wasmHealth.score[i] !== peerHealth[i]) throw new Error(`health: wasm and peer disagree on partner ${i}: ${wasmHealth.score[i]} vs ${peerHealth[i]}`);
}
results.wasm.health = wasmHealthSeconds;
results.peer.health = peerHealthSeconds;

// creditTrends, monthly over a year: 100 resellers, 10 000 ledger entries each (1 000 top-ups and
// 9 bulk provisions of 1 000), spread over 2026. Cold: a fresh instance over the same storage
// resumes each wallet from its checkpoint (per-day totals included) and replays only the entries
// after it; warm: the next call, which reads the per-day totals the instance keeps. The peer buckets the same entries, already
// parsed, with decimal.js.
const trendStorage = wasm.memoryStorage();
let trendNow = Date.UTC(2026, 0, 1, 12);
const trendWriter = new wasm.Ally({ storage: trendStorage, clock: () => new Date(trendNow) });
const trendResellers = [];
for (let r = 0; r < 100; r++) {
  const reseller = await trendWriter.make().user(10_000 + r).company(`Trend ${r}`).create();
  trendResellers.push(reseller);
  for (let k = 0; k < 1_000; k++) {
    trendNow = Date.UTC(2026, 0, 1 + ((k * 365) / 1_000) | 0, 12);
    await trendWriter.addCredits(reseller, 10_000 + ((r * 7 + k) % 100));
    if (k % 111 === 110) await trendWriter.provisionBulk(reseller, Array.from({ length: 1_000 }, () => ({ cost: 1 })));
  }
}
const trendReader = new wasm.Ally({ storage: trendStorage });
const [coldTrend, wasmTrendColdSeconds] = await timeAsync(() => trendReader.analytics().monthly().creditTrends("2026-01-01", "2026-12-31"));
let wasmTrendWarmSeconds = Infinity;
for (let r = 0; r < 5; r++) {
  const [warm, seconds] = await timeAsync(() => trendReader.analytics().monthly().creditTrends("2026-01-01", "2026-12-31"));
  if (JSON.stringify(warm) !== JSON.stringify(coldTrend)) throw new Error("creditTrends: the warm answer differs from the cold one");
  wasmTrendWarmSeconds = Math.min(wasmTrendWarmSeconds, seconds);
}
// The peer's input, read after the wasm side is measured so that it does not sit in the heap.
const trendEntries = [];
for (const reseller of trendResellers) trendEntries.push(...(await trendWriter.ledger(reseller)));
if (trendEntries.length !== 1_000_000) throw new Error(`creditTrends: expected 1 000 000 entries, got ${trendEntries.length}`);
const [peerTrend, peerTrendSeconds] = bestOf(3, () => peer.creditTrendsMonthly(trendEntries, "2026-01-01", "2026-12-31"));
if (JSON.stringify(peerTrend) !== JSON.stringify(coldTrend)) throw new Error(`creditTrends: wasm and peer disagree: ${JSON.stringify(coldTrend)} vs ${JSON.stringify(peerTrend)}`);
results.wasm.trendsCold = wasmTrendColdSeconds;
results.wasm.trendsWarm = wasmTrendWarmSeconds;
results.peer.trends = peerTrendSeconds;

// Native Rust at opt-level 3 (profile bench-native), the build a server would choose.
// The engine form of the monthly run, in a process of its own (its peak memory is its own). Node
// 20's optimiser has been seen to abort a process in deoptimisation now and then ("unreachable
// code" in Deoptimizer::DoComputeBuiltinContinuation) while this script sets its data up, before
// the runs it measures; such a process is run again, at most three times.
const engineProcess = (() => {
  for (let attempt = 1; ; attempt++) {
    try {
      return JSON.parse(execFileSync(process.execPath, [resolve(root, "bench/engine-process.mjs")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
    } catch (error) {
      if (attempt === 3) throw error;
      console.error(`engine-process.mjs ended with ${error.status ?? error.signal}: running it again`);
    }
  }
})();
execFileSync("cargo", ["build", "--profile", "bench-native", "--quiet", "--example", "bench"], { cwd: root, stdio: "inherit" });
results.native = JSON.parse(execFileSync(resolve(root, "target/bench-native/examples/bench"), { encoding: "utf8" }));

const targets = { tierCost: 5e6, tierCostBatch: 50e6, quote: 50e3 };
const units = { tierCost: "calls/s", tierCostBatch: "prices/s", quote: "quotes/s (20 lines)" };
const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0));
console.log(`\nNode ${process.version}, medians of repeated runs, one process run\n`);
console.log("workload        wasm          decimal.js    native        wasm/peer  native/wasm  target       met");
for (const key of Object.keys(targets)) {
  const w = results.wasm[key];
  const p = results.peer[key];
  const n = results.native[key];
  const met = w >= targets[key] && w >= 5 * p ? "yes" : "NO";
  console.log(
    `${key.padEnd(15)} ${fmt(w).padEnd(13)} ${fmt(p).padEnd(13)} ${fmt(n).padEnd(13)} ${(w / p).toFixed(1).padStart(7)}x  ${(n / w).toFixed(2).padStart(9)}x  ≥${fmt(targets[key])} & 5x  ${met}`,
  );
}
console.log(`units: ${Object.entries(units).map(([k, u]) => `${k} in ${u}`).join("; ")}`);
const w = results.wasm, p = results.peer, n = results.native;
const nativeArray = (n.validateLedgerArraySeconds / n.validateLedgerEntries) * 1e6;
const row = (name, wv, pv, nv, target, met, lowerIsBetter = false) =>
  console.log(
    `${name.padEnd(15)} ${wv.padEnd(13)} ${pv.padEnd(13)} ${nv.padEnd(13)} ${lowerIsBetter ? "" : ""}${target.padEnd(13)}${met ? "yes" : "NO"}`,
  );
console.log("\nworkload        wasm          decimal.js    native        target       met");
row("provision", fmt(w.provision), fmt(p.provision), fmt(n.provision), "≥200 k/s", w.provision >= 200e3);
row("validateLedger", `${w.validateLedger.toFixed(3)} s`, `${p.validateLedger.toFixed(3)} s`, `${n.validateLedgerSeconds.toFixed(3)} s`, "≤1 s", w.validateLedger <= 1);
row("  (array form)", `${w.validateLedgerArray.toFixed(2)} s`, `${p.validateLedgerArray.toFixed(2)} s`, `${nativeArray.toFixed(2)} s`, "-", true);
console.log(`ratios: provision wasm/peer ${(w.provision / p.provision).toFixed(2)}x, native/wasm ${(n.provision / w.provision).toFixed(2)}x; validateLedger peer/wasm ${(p.validateLedger / w.validateLedger).toFixed(2)}x, wasm/native ${(w.validateLedger / n.validateLedgerSeconds).toFixed(2)}x`);
row("commission", `${w.commission.toFixed(3)} s`, `${p.commission.toFixed(3)} s`, `${n.commissionSeconds.toFixed(3)} s`, "≤1.5 s", w.commission <= 1.5);
row("healthScore", `${(w.health * 1e3).toFixed(1)} ms`, `${(p.health * 1e3).toFixed(1)} ms`, `${(n.healthSeconds * 1e3).toFixed(1)} ms`, "≤50 ms", w.health <= 0.05);
console.log(`units: healthScore in milliseconds for ${partners.toLocaleString("en")} partners in one healthScoreBatch call (Float64Array columns in, Uint16Array scores out), best of runs; the peer's scores are checked equal to the hundredth`);
row("creditTrends", `${(w.trendsWarm * 1e3).toFixed(1)} ms`, `${(p.trends * 1e3).toFixed(1)} ms`, `${(n.trendsWarmSeconds * 1e3).toFixed(1)} ms`, "≤200 ms", w.trendsWarm <= 0.2);
row("  (cold)", `${(w.trendsCold * 1e3).toFixed(0)} ms`, "-", `${(n.trendsColdSeconds * 1e3).toFixed(0)} ms`, "≤200 ms", w.trendsCold <= 0.2);
console.log("units: creditTrends in milliseconds, monthly over 2026 for 100 resellers and 1 000 000 ledger entries (100 000 top-ups); warm is an instance that has replayed the wallets (best of 5), cold a fresh instance that resumes from each wallet's checkpoint and replays only the entries after it; the peer scans the parsed entries with decimal.js, and its buckets are checked equal");
const coldRatio = w.cold1M / w.cold1k;
row("cold provision", `${(w.cold1M * 1e3).toFixed(2)} ms`, "-", `${(n.coldProvision1MSeconds * 1e3).toFixed(2)} ms`, "≤25 ms, ≤3x", w.cold1M <= 0.025 && coldRatio <= 3);
row("  (1 k entries)", `${(w.cold1k * 1e3).toFixed(2)} ms`, "-", `${(n.coldProvision1kSeconds * 1e3).toFixed(2)} ms`, "-", true);
console.log(`units: cold provision in milliseconds, the first provision of a fresh instance over the same in-memory storage on a wallet of 1 000 000 entries (1 M / 1 k = ${coldRatio.toFixed(2)}x), median of 7; the peer keeps no history to resume from`);
row("  (totals only)", `${w.commissionTotalsOnly.toFixed(3)} s`, "-", "-", "-", true);
row("engine process", `${engineProcess.seconds.toFixed(2)} s`, "-", "-", "-", true);
row("  (run again)", `${engineProcess.againSeconds.toFixed(2)} s`, "-", "-", "-", true);
console.log(`units: engine process in seconds, ally.commissions.process over ${engineProcess.payments.toLocaleString("en")} payments stored in the in-memory default (1 000 resellers in 3 levels, 10 000 clients), ${engineProcess.lines.toLocaleString("en")} lines recorded; run again records nothing; peak resident memory of its process ${engineProcess.peakBeforeMB.toFixed(0)} MB with the data stored, ${engineProcess.peakAfterMB.toFixed(0)} MB after the runs`);
console.log(`units: commission in seconds for the monthly run over ${paymentCount.toLocaleString("en")} payments (columns), 200 000 customers, 10 000 resellers, 3 levels, ${results.commissionLines.toLocaleString("en")} lines returned as columns; totals only skips the lines; the peer's totals are checked equal to the cent`);
console.log(`units: provision in provisions/s (in-memory storage, awaited one by one); validateLedger in seconds for ${million.toLocaleString("en")} entries as exportLedger's buffer (${results.ledgerBytes.toLocaleString("en")} bytes), hash chain included, best of runs; the array form in seconds per 1 M entries, from ${wasmLedger.length.toLocaleString("en")} JSON entries (native: parsed entries)`);
console.log("");
for (const [name, path] of [["ally-engine", "pkg/ally_engine_bg.wasm"], ["ally-engine/pricing", "pkg/pricing/ally_engine_bg.wasm"]]) {
  const module = readFileSync(resolve(root, path));
  console.log(`${name.padEnd(20)} .wasm after wasm-opt: ${module.length} bytes raw, ${gzipSync(module, { level: 9 }).length} bytes gzipped (limit for size-bound hosts: 262144 raw)`);
}
// The bindings' share of the core (the boundary issue aims for at most a quarter).
const rustLines = (dir) => readdirSync(resolve(root, dir), { recursive: true })
  .filter((file) => file.endsWith(".rs"))
  .reduce((sum, file) => sum + readFileSync(resolve(root, dir, file), "utf8").split("\n").length - 1, 0);
const [bindings, domain, engine] = ["src/wasm", "src/domain", "src/engine"].map(rustLines);
console.log(`src/wasm: ${bindings} lines, ${((100 * bindings) / (domain + engine)).toFixed(0)} % of src/domain and src/engine (${domain + engine} lines)`);
