// The pure-JavaScript peer the benchmark measures the wasm package against: the same pricing
// rules written the way a careful JS team would, on decimal.js, with node:crypto for the SHA-256
// fingerprint. It exists only for the benchmark, which checks that both give the same answers.
import Decimal from "decimal.js";
import { createHash } from "node:crypto";

const D = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_UP });
const ONE = new D(1);
const MAX = 9007199254740991;
const TIERS = new Map([
  ["standard", new D("0")],
  ["gold", new D("0.15")],
  ["platinum", new D("0.30")],
]);

function credits(value, field) {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX || Object.is(value, -0)) {
    throw new TypeError(`${field}: expected whole credits, got ${String(value)}`);
  }
  return value;
}

function discountOf(tier) {
  const discount = TIERS.get(tier);
  if (discount === undefined) throw new TypeError(`unknown tier "${tier}"`);
  return discount;
}

export function tierCost(basePrice, tier) {
  const base = credits(basePrice, "basePrice");
  return new D(base).times(ONE.minus(discountOf(tier))).toDecimalPlaces(0, D.ROUND_HALF_UP).toNumber();
}

export function tierCostBatch(prices, tier) {
  const paid = ONE.minus(discountOf(tier));
  const out = new Float64Array(prices.length);
  for (let i = 0; i < prices.length; i++) {
    out[i] = new D(credits(prices[i], `basePrices[${i}]`)).times(paid).toDecimalPlaces(0, D.ROUND_HALF_UP).toNumber();
  }
  return out;
}

export function catalog(products) {
  return new Map(products.map((p) => [p.sku, p]));
}

function bandsFor(product, quantity) {
  if (product.pricing === "package") return [];
  if (!product.bands) return [{ band: null, upTo: null, quantity, unitPrice: product.basePrice, amount: new D(product.basePrice).times(quantity) }];
  const use = (band, index, units) => {
    const fee = band.flatFee ?? 0;
    return { band: index, upTo: band.upTo ?? null, quantity: units, unitPrice: band.unitPrice, ...(fee ? { flatFee: fee } : {}), amount: new D(band.unitPrice).times(units).plus(fee) };
  };
  if (product.pricing === "volume") {
    if (quantity === 0) return []; // 0 units reach no band
    const index = product.bands.findIndex((b) => b.upTo === null || b.upTo === undefined || quantity <= b.upTo);
    return [use(product.bands[index], index, quantity)];
  }
  // Graduated: every band reached, the first always (a line of 0 units bills its flat fee).
  const uses = [];
  let floor = 0;
  product.bands.forEach((band, index) => {
    if (index > 0 && floor >= quantity) return;
    const ceiling = band.upTo === null || band.upTo === undefined ? quantity : Math.min(band.upTo, quantity);
    uses.push(use(band, index, ceiling - floor));
    floor = ceiling;
  });
  return uses;
}

/** Started blocks past the free units. */
function packagesFor(product, quantity) {
  return Math.ceil(Math.max(0, quantity - (product.freeUnits ?? 0)) / product.packageSize);
}

export function quote(request, products) {
  const discount = discountOf(request.tier);
  const paid = ONE.minus(discount);
  let subtotal = new D(0);
  let total = new D(0);
  const lines = request.lines.map((line, i) => {
    const product = products.get(line.sku);
    if (!product) throw new TypeError(`request.lines[${i}].sku: no product "${line.sku}"`);
    if (product.tiers && !product.tiers.includes(request.tier)) throw new TypeError(`request.lines[${i}].sku: tier restricted`);
    const quantity = credits(line.quantity, `request.lines[${i}].quantity`);
    const bands = bandsFor(product, quantity);
    const packages = product.pricing === "package" ? packagesFor(product, quantity) : null;
    const lineSubtotal = packages === null ? bands.reduce((sum, b) => sum.plus(b.amount), new D(0)) : new D(product.packagePrice).times(packages);
    const lineTotal = lineSubtotal.times(paid).toDecimalPlaces(0, D.ROUND_HALF_UP);
    subtotal = subtotal.plus(lineSubtotal);
    total = total.plus(lineTotal);
    return {
      sku: product.sku,
      name: product.name,
      quantity,
      unitPrice: packages !== null ? product.packagePrice : bands.length > 0 ? bands[bands.length - 1].unitPrice : product.bands[0].unitPrice,
      bands: bands.map((b) => ({ ...b, amount: b.amount.toNumber() })),
      ...(packages === null ? {} : { packages, freeUnits: Math.min(quantity, product.freeUnits ?? 0) }),
      subtotal: lineSubtotal.toNumber(),
      discountRate: discount.toFixed(4),
      discount: lineSubtotal.minus(lineTotal).toNumber(),
      total: lineTotal.toNumber(),
    };
  });
  const result = {
    tier: request.tier,
    lines,
    subtotal: subtotal.toNumber(),
    discount: subtotal.minus(total).toNumber(),
    total: total.toNumber(),
    totalMoney: total.dividedBy(100).toFixed(2, D.ROUND_HALF_UP),
  };
  const hash = createHash("sha256");
  hash.update(JSON.stringify([request.tier, lines.map((l) => [l.sku, l.quantity, l.subtotal, l.total]), result.subtotal, result.total, result.totalMoney]));
  result.fingerprint = hash.digest("hex");
  return result;
}

// The wallet, the way a JS team would keep it: balances on decimal.js, entries hash-chained with
// node:crypto over the same byte encoding the engine uses, so both audits agree on every hash.
function u64(n) {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(n));
  return b;
}
function str(s) {
  const bytes = Buffer.from(s, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32LE(bytes.length);
  return Buffer.concat([len, bytes]);
}
function optStr(s) {
  return s == null ? Buffer.from([0]) : Buffer.concat([Buffer.from([1]), str(s)]);
}
export function chainHash(entry, previous) {
  const batch = entry.batch
    ? Buffer.concat([Buffer.from([1]), Buffer.from(new Uint32Array([entry.batch.index, entry.batch.size]).buffer)])
    : Buffer.from([0]);
  return createHash("sha256")
    .update(Buffer.concat([
      previous, Buffer.from([2]), u64(entry.sequence), Buffer.from([entry.kind === "credit" ? 1 : 2]),
      u64(entry.amount), u64(entry.balanceAfter), u64(Date.parse(entry.at)),
      str(entry.id), str(entry.walletId), optStr(entry.memo), optStr(entry.idempotencyKey), batch,
    ]))
    .digest();
}

export function wallet(walletId) {
  const entries = [];
  let balance = new D(0);
  let head = Buffer.alloc(32);
  const append = (kind, amount, memo) => {
    const next = kind === "credit" ? balance.plus(amount) : balance.minus(amount);
    if (next.isNegative()) throw new RangeError("INSUFFICIENT_CREDITS");
    const entry = {
      id: `le_${entries.length.toString(36)}`, walletId, sequence: entries.length + 1, kind, amount: credits(amount, "amount"),
      balanceAfter: next.toNumber(), memo: memo ?? null, idempotencyKey: null, batch: null, at: new Date().toISOString(), hash: "",
    };
    const hash = chainHash(entry, head);
    entry.hash = hash.toString("hex");
    head = hash;
    balance = next;
    entries.push(entry);
    return entry;
  };
  return {
    entries,
    addCredits: async (amount, memo) => append("credit", amount, memo),
    provision: async (cost, memo) => append("debit", cost, memo),
  };
}

export function validateLedger(entries) {
  let head = Buffer.alloc(32);
  let balance = new D(0);
  const violations = [];
  entries.forEach((entry, index) => {
    balance = entry.kind === "credit" ? balance.plus(entry.amount) : balance.minus(entry.amount);
    if (!balance.equals(entry.balanceAfter)) violations.push({ index, code: "BALANCE_MISMATCH" });
    if (entry.sequence !== index + 1) violations.push({ index, code: "SEQUENCE_GAP" });
    const hash = chainHash(entry, head);
    if (hash.toString("hex") !== entry.hash) violations.push({ index, code: "HASH_MISMATCH" });
    head = Buffer.from(entry.hash, "hex");
  });
  return { ok: violations.length === 0, balance: balance.toNumber(), violations };
}

// The binary ledger (exportLedger's layout), read with a DataView and checked the same way.
export function validateLedgerBytes(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (Buffer.from(bytes.subarray(0, 8)).toString("latin1") !== "ALLYLDG\x02") throw new TypeError("not a binary ledger");
  const decoder = new TextDecoder();
  let at = 8;
  let head = Buffer.alloc(32);
  let balance = new D(0);
  const ids = new Set();
  const violations = [];
  const text = () => {
    const len = view.getUint32(at, true);
    const value = decoder.decode(bytes.subarray(at + 4, at + 4 + len));
    at += 4 + len;
    return value;
  };
  for (let index = 0; at < bytes.length; index++) {
    const start = at;
    const sequence = Number(view.getBigUint64(at + 1, true));
    const kind = bytes[at + 9];
    const amount = Number(view.getBigInt64(at + 10, true));
    const balanceAfter = Number(view.getBigInt64(at + 18, true));
    at += 34;
    const id = text();
    text(); // walletId
    if (bytes[at++] === 1) text(); // memo
    if (bytes[at++] === 1) text(); // idempotencyKey
    if (bytes[at++] === 1) at += 8; // batch
    const hash = createHash("sha256").update(head).update(bytes.subarray(start, at)).digest();
    const recorded = bytes.subarray(at, at + 32);
    at += 32;
    balance = kind === 1 ? balance.plus(amount) : balance.minus(amount);
    if (!balance.equals(balanceAfter)) violations.push({ index, code: "BALANCE_MISMATCH" });
    if (sequence !== index + 1) violations.push({ index, code: "SEQUENCE_GAP" });
    if (ids.has(id)) violations.push({ index, code: "DUPLICATE_ID" });
    ids.add(id);
    if (!hash.equals(recorded)) violations.push({ index, code: "HASH_MISMATCH" });
    head = Buffer.from(recorded);
  }
  return { ok: violations.length === 0, balance: balance.toNumber(), violations };
}

// The monthly commission run over columns (what a JS team would pass at this scale): the
// reseller's own rate, overrides up the parents, a hold before a line is payable, refunds as
// clawbacks. Money on decimal.js in minor units; each payment's split rounded once (half up) and
// allocated over its levels by largest remainder, as the engine does.
export function commissionRun({ payments, customers, resellers, plan, start, end, asOf }) {
  const n = payments.customer.length;
  const holdMs = plan.holdDays * 86_400_000;
  const totals = resellers.map(() => ({ direct: new D(0), overrides: new D(0), clawbacks: new D(0), approved: new D(0), pending: new D(0) }));
  const overrides = plan.overrides.map((r) => new D(r).times(10_000));
  const levels = [];
  for (let i = 0; i < n; i++) {
    const at = payments.at[i];
    if (payments.status[i] !== 0 || at < start || at >= end) continue;
    const direct = customers.reseller[payments.customer[i]];
    levels.length = 0;
    if (resellers[direct].approved) levels.push([direct, new D(resellers[direct].rate).times(10_000), 0]);
    let up = resellers[direct].parent;
    for (let l = 0; l < overrides.length && up != null; l++) {
      if (resellers[up].approved) levels.push([up, overrides[l], l + 1]);
      up = resellers[up].parent;
    }
    if (levels.length === 0) continue;
    const amount = new D(payments.amountMinor[i]);
    const rateSum = levels.reduce((s, [, r]) => s.plus(r), new D(0));
    const total = amount.times(rateSum).div(10_000).toDecimalPlaces(0, D.ROUND_HALF_UP);
    // Largest remainder: floor shares, then one unit to the largest remainders (compared as
    // exact integers: total × rate mod the rate sum).
    const products = levels.map(([, r]) => total.times(r));
    const parts = products.map((x) => x.divToInt(rateSum));
    let left = total.minus(parts.reduce((a, b) => a.plus(b), new D(0))).toNumber();
    const order = products.map((x, k) => [x.mod(rateSum), k]).sort((a, b) => b[0].comparedTo(a[0]) || a[1] - b[1]);
    for (const [, k] of order) {
      if (left <= 0) break;
      parts[k] = parts[k].plus(1);
      left -= 1;
    }
    const refund = payments.kind[i] !== 0;
    const payableAt = refund ? at : at + holdMs;
    levels.forEach(([r, , level], k) => {
      const part = refund ? parts[k].negated() : parts[k];
      const t = totals[r];
      if (refund) t.clawbacks = t.clawbacks.plus(part);
      else if (level === 0) t.direct = t.direct.plus(part);
      else t.overrides = t.overrides.plus(part);
      if (payableAt <= asOf) t.approved = t.approved.plus(part);
      else t.pending = t.pending.plus(part);
    });
  }
  return totals.map((t) => ({ total: t.direct.plus(t.overrides).plus(t.clawbacks), approved: t.approved, pending: t.pending }));
}

// Partner health over columns, the way a JS team would write it on decimal.js: each metric
// normalised between the reference floor and target, weighted, missing components re-weighted.
const HEALTH = [
  ["revenue", 25, "0", "10000"],
  ["newCustomers", 20, "0", "10"],
  ["retentionRate", 20, "0.70", "0.95"],
  ["growthRate", 15, "-0.10", "0.10"],
  ["activeDays", 10, "0", "20"],
  ["slaCompliance", 5, "0.80", "0.99"],
  ["satisfaction", 5, "5", "9"],
].map(([metric, weight, floor, target]) => ({ metric, weight, floor: new D(floor), span: new D(target).minus(floor) }));

export function healthBatch(columns, count) {
  const scores = new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    let total = new D(0);
    let weights = 0;
    for (const c of HEALTH) {
      const v = columns[c.metric][i];
      if (Number.isNaN(v)) continue;
      let n = new D(v).minus(c.floor).div(c.span).times(100);
      if (n.lt(0)) n = new D(0);
      if (n.gt(100)) n = new D(100);
      total = total.plus(n.toDecimalPlaces(2).times(c.weight));
      weights += c.weight;
    }
    scores[i] = total.div(weights).toDecimalPlaces(2).times(100).toNumber();
  }
  return scores;
}

/** Credits distributed (credit entries) per month of [start, end], every month present, over
 * ledger entries as the engine stores them: what `analytics().monthly().creditTrends` answers. */
export function creditTrendsMonthly(entries, start, end) {
  const first = start.slice(0, 7);
  const last = end.slice(0, 7);
  const sums = new Map();
  for (let [y, m] = first.split("-").map(Number); `${y}-${String(m).padStart(2, "0")}` <= last; m === 12 ? ((y += 1), (m = 1)) : (m += 1)) {
    sums.set(`${y}-${String(m).padStart(2, "0")}`, new D(0));
  }
  for (const entry of entries) {
    if (entry.kind !== "credit") continue;
    const day = entry.at.slice(0, 10);
    if (day < start || day > end) continue;
    const key = entry.at.slice(0, 7);
    sums.set(key, sums.get(key).plus(entry.amount));
  }
  return Object.fromEntries([...sums].map(([k, v]) => [k, v.toNumber()]));
}
