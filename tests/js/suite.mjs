// The package's behaviour, as every runtime must show it. `lib` is the package as that runtime
// imports it; nothing here touches runtime-specific APIs.
import { Harness, equal, ok, fails, report } from "./harness.mjs";
import { hostStorage } from "./host-storage.mjs";
import { conformance } from "./storage-conformance.mjs";
import { walletStateCases } from "./wallet-state.mjs";
import { combineCases } from "./combine.mjs";

export const CATALOG = [
  { sku: "basic", name: "Basic licence", basePrice: 1000 },
  { sku: "pro", name: "Pro licence", basePrice: 5000, tiers: ["gold", "platinum"] },
  { sku: "vol", name: "Volume seats", pricing: "volume", bands: [{ upTo: 10, unitPrice: 100 }, { upTo: 50, unitPrice: 90 }, { upTo: null, unitPrice: 80 }] },
  { sku: "grad", name: "Graduated seats", pricing: "graduated", bands: [{ upTo: 10, unitPrice: 100 }, { upTo: 50, unitPrice: 90 }, { unitPrice: 80 }] },
];

export const GOLDEN_REQUEST = { tier: "platinum", lines: [{ sku: "basic", quantity: 2 }, { sku: "grad", quantity: 12 }, { sku: "vol", quantity: 5 }] };
// The same bytes in every runtime: a change here is a change to the fingerprint format.
export const GOLDEN_FINGERPRINT = "be8d46cfe322d6f988e2110a1b6fd02c8934a15105889f167b82762944ceaa0d";

/** Values that are not credits: each must be refused with INVALID_INPUT. */
const NOT_CREDITS = [NaN, Infinity, -Infinity, -0, 1.5, 0.1 + 0.2, 2 ** 53, -1, 1e300, "1e3", "1_000", " 5", "5", null, undefined, {}, [], true, 2n ** 53n, -1n, () => 1, Symbol("x")];

/** Decimal texts our grammar refuses. */
const NOT_DECIMALS = ["1e3", "1E-2", "1_000", " 5", "5 ", "+5", ".5", "5.", "0x10", "01", "", "--1", "NaN", "Infinity", "1,5", "0.12345"];

function protoKeyed(json) {
  return JSON.parse(json); // JSON.parse makes "__proto__" an own key, as a hostile body would
}

export function cases(lib, runtime) {
  const { tierCost, tierCostBatch, quote, verifyQuote, Catalog, Ally, AllyError, memoryStorage } = lib;
  const h = new Harness(runtime);
  const t = (name, body) => h.test(name, body);
  const still = () => equal(tierCost(1000, "platinum"), 700, "the instance still works");

  t("tierCost prices the reference tiers", () => {
    const table = [[1000, "platinum", 700], [1000, "gold", 850], [1000, "standard", 1000], [0, "gold", 0], [3, "gold", 3], [15, "platinum", 11], [9007199254740991, "standard", 9007199254740991], [10n, "gold", 9]];
    for (const [base, tier, want] of table) equal(tierCost(base, tier), want, `tierCost(${base}, ${tier})`);
  });

  t("tierCost rounding modes and custom tiers", () => {
    equal(tierCost(3, "gold", { rounding: "down" }), 2, "3 gold down");
    equal(tierCost(3, "gold", { rounding: "up" }), 3, "3 gold up");
    equal(tierCost(5, "half", { tiers: { half: { discount: "0.5" } }, rounding: "halfEven" }), 2, "5 half halfEven");
    equal(tierCost(7, "half", { tiers: { half: { discount: 0.5 } }, rounding: "halfEven" }), 4, "7 half halfEven");
    equal(tierCost(1000, "silver", { tiers: { silver: { discount: "0.10" } } }), 900, "silver");
    equal(tierCost(1000, "gold", { tiers: { gold: { discount: "0.2" } } }), 800, "gold changed");
  });

  t("tierCost refuses what is not credits", async () => {
    for (const bad of NOT_CREDITS) {
      const e = await fails(AllyError, "INVALID_INPUT", () => tierCost(bad, "gold"), `tierCost(${String(typeof bad === "symbol" ? "symbol" : bad)})`);
      equal(e.details.field, "basePrice", "details.field");
      still();
    }
  });

  t("tierCost refuses unknown tiers, bad options, proto keys and inherited properties", async () => {
    await fails(AllyError, "UNKNOWN_TIER", () => tierCost(1, "diamond"));
    await fails(AllyError, "INVALID_INPUT", () => tierCost(1, 5));
    await fails(AllyError, "INVALID_INPUT", () => tierCost(1, "gold", { rounding: "sideways" }));
    await fails(AllyError, "INVALID_INPUT", () => tierCost(1, "gold", { colour: "blue" }));
    await fails(AllyError, "INVALID_INPUT", () => tierCost(1, "gold", protoKeyed('{"__proto__": {"rounding": "up"}}')));
    await fails(AllyError, "INVALID_INPUT", () => tierCost(1, "gold", protoKeyed('{"constructor": 1}')));
    await fails(AllyError, "INVALID_INPUT", () => tierCost(1, "gold", Object.create({ rounding: "up" })));
    await fails(AllyError, "INVALID_INPUT", () => tierCost(1, "gold", new Date()));
    await fails(AllyError, "INVALID_INPUT", () => tierCost(1, "gold", { rounding: NaN }));
    for (const discount of [...NOT_DECIMALS, "1.5", "-0.1", 1.5, NaN, Infinity]) {
      await fails(AllyError, "INVALID_INPUT", () => tierCost(1, "x", { tiers: { x: { discount } } }), `discount ${String(discount)}`);
    }
    await fails(AllyError, "INVALID_INPUT", () => tierCost(1, "Bad Name", { tiers: { "Bad Name": { discount: "0.1" } } }));
    still();
  });

  t("tierCostBatch matches tierCost and names the bad index", async () => {
    const prices = new Float64Array(1000);
    for (let i = 0; i < prices.length; i++) prices[i] = (i * 7919) % 100003;
    for (const tier of ["standard", "gold", "platinum"]) {
      const out = tierCostBatch(prices, tier);
      ok(out instanceof Float64Array, "a Float64Array");
      equal(out.length, prices.length, "length");
      for (let i = 0; i < prices.length; i += 37) equal(out[i], tierCost(prices[i], tier), `price ${prices[i]} ${tier}`);
    }
    equal(Array.from(tierCostBatch([1000, 3, 15], "gold", { rounding: "down" })), [850, 2, 12], "array input");
    equal(tierCostBatch(new Float64Array(0), "gold").length, 0, "empty");
    const e = await fails(AllyError, "INVALID_INPUT", () => tierCostBatch(new Float64Array([1, 2, 2.5]), "gold"));
    equal(e.details.field, "basePrices[2]", "field");
    await fails(AllyError, "INVALID_INPUT", () => tierCostBatch([1, "2"], "gold"));
    await fails(AllyError, "INVALID_INPUT", () => tierCostBatch(new Float64Array([NaN]), "gold"));
    await fails(AllyError, "INVALID_INPUT", () => tierCostBatch(new Float64Array([-0]), "gold"));
    await fails(AllyError, "INVALID_INPUT", () => tierCostBatch("1,2", "gold"));
    await fails(AllyError, "UNKNOWN_TIER", () => tierCostBatch([1], "diamond"));
    // Arrays read through traps that throw, or a revoked Proxy: refused, never a throw through
    // the module.
    const trap = () => { throw new Error("trap"); };
    const revoked = Proxy.revocable([], {});
    revoked.revoke();
    const getter = [1, 2];
    Object.defineProperty(getter, 1, { get: trap });
    // An array whose only trap is getPrototypeOf reads as the array it is (no instanceof).
    equal(Array.from(tierCostBatch(new Proxy([1000, 20], { getPrototypeOf: trap }), "gold")), [850, 17], "a getPrototypeOf trap is not run");
    for (const [prices, what] of [
      [new Proxy([1, 2], { get: trap }), "a get trap"],
      [new Proxy(new Float64Array(2), { getPrototypeOf: trap, get: trap }), "a typed array behind traps"],
      [revoked.proxy, "a revoked Proxy"],
      [getter, "an index getter"],
    ]) {
      await fails(AllyError, "INVALID_INPUT", () => tierCostBatch(prices, "gold"), `prices with ${what}`);
    }
    // A typed array is read by its elements, whatever its length property claims.
    class Lying extends Float64Array { get length() { throw new Error("the length getter"); } }
    equal(Array.from(tierCostBatch(new Lying([1000, 20]), "gold")), [850, 17], "a subclass whose length getter throws");
    const claims = Object.defineProperty(new Float64Array([1000]), "length", { value: 2 ** 22 });
    equal(Array.from(tierCostBatch(claims, "gold")), [850], "an own length past its elements");
    const tooMany = new Proxy([], { get: (target, key) => (key === "length" ? 2 ** 32 - 1 : Reflect.get(target, key)) });
    await fails(AllyError, "INVALID_INPUT", () => tierCostBatch(tooMany, "gold"), "a claimed length past the bound");
    still();
  });

  t("quote prices each model, line by line", () => {
    const q = quote(GOLDEN_REQUEST, CATALOG);
    equal(q.lines.map((l) => [l.sku, l.subtotal, l.discount, l.total, l.unitPrice]), [["basic", 2000, 600, 1400, 1000], ["grad", 1180, 354, 826, 90], ["vol", 500, 150, 350, 100]], "lines");
    equal(q.lines[1].bands, [{ band: 0, upTo: 10, quantity: 10, unitPrice: 100, amount: 1000 }, { band: 1, upTo: 50, quantity: 2, unitPrice: 90, amount: 180 }], "graduated bands");
    equal([q.subtotal, q.discount, q.total, q.totalMoney, q.currency, q.discountRate], [3680, 1104, 2576, "25.76", "USD", "0.3000"], "totals");
    equal(q.request, { tier: "platinum", lines: GOLDEN_REQUEST.lines, rounding: "halfUp" }, "request echo");
    equal(q.fingerprint, GOLDEN_FINGERPRINT, "fingerprint is the same in every runtime");
    const vol = quote({ tier: "standard", lines: [{ sku: "vol", quantity: 51 }] }, CATALOG);
    equal([vol.lines[0].unitPrice, vol.total], [80, 4080], "volume band 3");
  });

  t("results cross whole: amounts past 2^31, text in any script and length, many names, records of any prototype", () => {
    const names = ["Café ☕", "日本語の製品名", "a".repeat(32), "b".repeat(33), "·", "a receipt 🧾 whose name runs on past thirty-two bytes"];
    const products = names.map((name, i) => ({ sku: `u-${i}`, name, basePrice: 1_000_000 }));
    const big = quote({ tier: "standard", lines: products.map((p) => ({ sku: p.sku, quantity: 1_000_000_000 })) }, products);
    equal(big.lines.map((l) => l.name), names, "names in any script and length");
    equal([big.lines[0].subtotal, big.subtotal, big.totalMoney], [1e15, 6e15, "60000000000000.00"], "amounts past 2^31 and 2^52, exact");
    const skus = Array.from({ length: 500 }, (_, i) => `s${i.toString(36)}`);
    const many = quote({ tier: "gold", lines: skus.map((sku) => ({ sku, quantity: 1 })) }, skus.map((sku) => ({ sku, name: sku.toUpperCase(), basePrice: 1 })));
    equal(many.lines.map((l) => [l.sku, l.name]), skus.map((s) => [s, s.toUpperCase()]), "500 distinct names, each its own");
    const plain = quote(GOLDEN_REQUEST, CATALOG);
    const bare = (o) => Object.assign(Object.create(null), o);
    equal(quote(bare({ tier: "platinum", lines: GOLDEN_REQUEST.lines.map(bare) }), CATALOG), plain, "records without a prototype read the same");
    equal(quote({ ...GOLDEN_REQUEST, rounding: undefined }, CATALOG), plain, "an undefined field is a missing one");
    equal([Object.getPrototypeOf(plain), Object.getPrototypeOf(plain.lines[0].bands[0])], [Object.prototype, Object.prototype], "results are plain objects");
    equal(JSON.parse(JSON.stringify(plain)), plain, "and the same through JSON");
  });

  t("the fast reader reads what the walker reads: a BOM kept, lone surrogates and odd array lengths left to the walker", async () => {
    const products = [{ sku: "w", name: "\uFEFFWidget", basePrice: 100 }];
    const q = quote({ tier: "gold", lines: [{ sku: "w", quantity: 1 }] }, products);
    equal(q.lines[0].name, "\uFEFFWidget", "a leading U+FEFF is text, not a byte order mark");
    equal(verifyQuote(q, products).valid, true, "so the quote verifies");
    const unknown = await fails(AllyError, "UNKNOWN_TIER", () => quote({ tier: "g\uD800", lines: [{ sku: "w", quantity: 1 }] }, products), "a lone surrogate");
    ok(unknown.message.includes("g\uFFFD"), `read as U+FFFD, as the walker reads it: ${unknown.message}`);
    for (const length of ["1", 1.5, -1, NaN, null, true, { valueOf: () => 1 }]) {
      const lines = new Proxy([{ sku: "w", quantity: 1 }], { get: (target, key) => (key === "length" ? length : target[key]) });
      const err = await fails(AllyError, "INVALID_INPUT", () => quote({ tier: "gold", lines }, products), `an array whose length is ${String(length)}`);
      ok(err.message.includes("request.lines") && err.message.includes("length"), err.message);
    }
    still();
  });

  t("a Catalog prices like an array and verifyQuote spots tampering", async () => {
    const revokedCatalog = Proxy.revocable([], {});
    revokedCatalog.revoke();
    await fails(AllyError, "INVALID_INPUT", () => new Catalog(revokedCatalog.proxy), "a revoked catalog");
    const catalog = new Catalog(CATALOG);
    equal(catalog.size, 4, "size");
    equal(catalog.digest.length, 64, "digest");
    const q = catalog.quote(GOLDEN_REQUEST);
    equal(q.fingerprint, quote(GOLDEN_REQUEST, CATALOG).fingerprint, "same fingerprint");
    equal(verifyQuote(q, catalog), { valid: true, fingerprint: q.fingerprint, mismatches: [] }, "genuine");
    const sent = JSON.parse(JSON.stringify(q));
    equal(verifyQuote(sent, CATALOG).valid, true, "survives JSON");
    sent.lines[0].total = 1;
    sent.total = 1976;
    equal(verifyQuote(sent, catalog).mismatches, ["lines[0].total", "total"], "tampered totals");
    const other = JSON.parse(JSON.stringify(q));
    other.request.tier = "gold";
    ok(!verifyQuote(other, catalog).valid, "a tier swap is caught");
    const cheaper = CATALOG.map((p) => (p.sku === "basic" ? { ...p, basePrice: 999 } : p));
    ok(!verifyQuote(q, cheaper).valid, "a changed catalog is caught");
  });

  t("flat fees per band, packages and lines of 0 units", () => {
    // Stripe's Typographic tiers, given a flat fee per tier; Lago's package example (5 USD per
    // 100 units, the first 100 free: 201 units cost 10 USD); credits are cents.
    const tiers = [{ upTo: 5, unitPrice: 700, flatFee: 1000 }, { upTo: 10, unitPrice: 650, flatFee: 500 }, { upTo: null, unitPrice: 600 }];
    const products = [
      { sku: "fonts-v", name: "Fonts (volume)", pricing: "volume", bands: tiers },
      { sku: "fonts-g", name: "Fonts (graduated)", pricing: "graduated", bands: tiers },
      { sku: "api", name: "API calls", pricing: "package", packageSize: 100, packagePrice: 500, freeUnits: 100 },
      { sku: "sms", name: "SMS", pricing: "package", packageSize: 1000, packagePrice: 5000 },
      ...CATALOG,
    ];
    const catalog = new Catalog(products);
    const subtotal = (sku, quantity) => catalog.quote({ tier: "standard", lines: [{ sku, quantity }] }).subtotal;
    const cases = [
      ["fonts-v", 0, 0], ["fonts-v", 5, 4500], ["fonts-v", 6, 4400], ["fonts-v", 11, 6600],
      ["fonts-g", 0, 1000], ["fonts-g", 6, 5650], ["fonts-g", 20, 14250],
      ["api", 0, 0], ["api", 100, 0], ["api", 101, 500], ["api", 201, 1000],
      ["sms", 1, 5000], ["sms", 1000, 5000], ["sms", 1001, 10000],
      ["basic", 0, 0], ["grad", 0, 0], ["vol", 0, 0],
    ];
    equal(cases.map(([sku, quantity]) => subtotal(sku, quantity)), cases.map((c) => c[2]), "subtotals");
    const q = catalog.quote({ tier: "gold", lines: [{ sku: "fonts-g", quantity: 6 }, { sku: "api", quantity: 201 }, { sku: "basic", quantity: 1 }] });
    equal(q.lines[0].bands, [
      { band: 0, upTo: 5, quantity: 5, unitPrice: 700, flatFee: 1000, amount: 4500 },
      { band: 1, upTo: 10, quantity: 1, unitPrice: 650, flatFee: 500, amount: 1150 },
    ], "each band's units, unit price and flat fee");
    equal([q.lines[0].subtotal, q.lines[0].total], [5650, 4803], "the tier discount on the subtotal, fees included");
    equal(
      [q.lines[1].pricing, q.lines[1].bands, q.lines[1].packages, q.lines[1].freeUnits, q.lines[1].unitPrice, q.lines[1].total],
      ["package", [], 2, 100, 500, 850],
      "a package line",
    );
    equal(["packages" in q.lines[2], "flatFee" in q.lines[2].bands[0]], [false, false], "nothing new on a line without them");
    equal(verifyQuote(q, catalog).valid, true, "genuine");
    for (const [path, tamper] of [
      ["lines[0].bands[0].flatFee", (t) => (t.lines[0].bands[0].flatFee = 0)],
      ["lines[1].packages", (t) => (t.lines[1].packages = 1)],
      ["lines[1].freeUnits", (t) => delete t.lines[1].freeUnits],
    ]) {
      const sent = JSON.parse(JSON.stringify(q));
      tamper(sent);
      equal(verifyQuote(sent, catalog).mismatches, [path], `tampered ${path}`);
    }
    const cheaper = products.map((p) => (p.sku === "api" ? { ...p, freeUnits: 101 } : p));
    ok(new Catalog(cheaper).digest !== catalog.digest, "free units are in the digest");
    ok(!verifyQuote(q, cheaper).valid, "a changed package is caught");
    // A catalog with neither keeps the digest it had: quotes priced before still verify.
    equal(new Catalog(CATALOG).quote(GOLDEN_REQUEST).fingerprint, GOLDEN_FINGERPRINT, "earlier fingerprint");
    still();
  });

  t("quote refuses with the right code and names the line", async () => {
    await fails(AllyError, "UNKNOWN_TIER", () => quote({ tier: "diamond", lines: [{ sku: "basic", quantity: 1 }] }, CATALOG));
    const restricted = await fails(AllyError, "TIER_RESTRICTED", () => quote({ tier: "standard", lines: [{ sku: "basic", quantity: 1 }, { sku: "pro", quantity: 1 }] }, CATALOG));
    equal(restricted.details.field, "request.lines[1].sku", "field");
    const cases = [
      [{ tier: "gold", lines: [{ sku: "nope", quantity: 1 }] }, "request.lines[0].sku"],
      [{ tier: "gold", lines: [{ sku: "basic", quantity: 1_000_000_001 }] }, "request.lines[0].quantity"],
      [{ tier: "gold", lines: [{ sku: "basic", quantity: -1 }] }, "request.lines[0].quantity"],
      [{ tier: "gold", lines: [{ sku: "basic", quantity: 1.5 }] }, "request.lines[0].quantity"],
      [{ tier: "gold", lines: [{ sku: "basic", quantity: NaN }] }, "request.lines[0].quantity"],
      [{ tier: "gold", lines: [{ sku: "basic", quantity: "1" }] }, "request.lines[0].quantity"],
      [{ tier: "gold", lines: [{ sku: "basic", quantity: 1, price: 0 }] }, "request.lines[0].price"],
      [{ tier: "gold", lines: [] }, "request.lines"],
      [{ tier: "gold" }, "request.lines"],
      [{ lines: [{ sku: "basic", quantity: 1 }] }, "request.tier"],
      [{ tier: "gold", lines: [{ sku: "basic", quantity: 1 }], rounding: "nearest" }, "request.rounding"],
      [protoKeyed('{"tier":"gold","lines":[{"sku":"basic","quantity":1}],"__proto__":{}}'), "request.__proto__"],
      [{ tier: "gold", lines: [Object.create({ sku: "basic", quantity: 1 })] }, "request.lines[0]"],
    ];
    for (const [request, field] of cases) {
      const e = await fails(AllyError, "INVALID_INPUT", () => quote(request, CATALOG), field);
      equal(e.details.field, field, "details.field");
    }
    const huge = [{ sku: "big", name: "Big", basePrice: 2 ** 52 }];
    const line = await fails(AllyError, "INVALID_INPUT", () => quote({ tier: "gold", lines: [{ sku: "big", quantity: 3 }] }, huge));
    equal(line.details.field, "request.lines[0].quantity", "a line past 2^53 - 1");
    const total = await fails(AllyError, "INVALID_INPUT", () => quote({ tier: "standard", lines: [{ sku: "big", quantity: 1 }, { sku: "big", quantity: 1 }] }, huge));
    equal(total.details.field, "request.lines", "a total past 2^53 - 1");
    await fails(AllyError, "INVALID_INPUT", () => quote("cart", CATALOG));
    // Sizes that could exhaust memory are refused before anything is allocated for them.
    await fails(AllyError, "INVALID_INPUT", () => quote({ tier: "gold", lines: new Array(2 ** 32 - 1) }, CATALOG));
    await fails(AllyError, "INVALID_INPUT", () => quote({ tier: "gold", lines: [{ sku: "x".repeat(2 ** 21), quantity: 1 }] }, CATALOG));
    await fails(AllyError, "INVALID_INPUT", () => new Catalog(new Array(2 ** 31)));
    await fails(AllyError, "INVALID_INPUT", () => tierCostBatch(new Array(2 ** 31), "gold"));
    await fails(AllyError, "INVALID_INPUT", () => tierCostBatch(new Float64Array(2 ** 22 + 1), "gold"));
    equal(tierCostBatch(new Float64Array(2 ** 22), "gold").length, 2 ** 22, "the largest batch");
    const deep = [];
    let cursor = deep;
    for (let i = 0; i < 100; i++) cursor = cursor[0] = [];
    await fails(AllyError, "INVALID_INPUT", () => quote({ tier: "gold", lines: deep }, CATALOG));
    still();
  });

  t("catalogs are validated, naming product and field", async () => {
    const bad = [
      [[{ sku: "a", name: "A" }], "catalog[0].basePrice"],
      [[{ sku: "a", name: "A", basePrice: -1 }], "catalog[0].basePrice"],
      [[{ sku: "a", name: "A", basePrice: 1, colour: "red" }], "catalog[0].colour"],
      [[{ sku: "a", name: "A", basePrice: 1 }, { sku: "a", name: "B", basePrice: 2 }], "catalog[1].sku"],
      [[{ sku: "a b", name: "A", basePrice: 1 }], "catalog[0].sku"],
      [[{ sku: "v", name: "V", pricing: "volume", bands: [{ upTo: 5, unitPrice: 1 }] }], "catalog[0].bands[0].upTo"],
      [[{ sku: "v", name: "V", pricing: "volume", basePrice: 5, bands: [{ unitPrice: 1 }] }], "catalog[0].basePrice"],
      [[{ sku: "v", name: "V", pricing: "stepped", bands: [{ unitPrice: 1 }] }], "catalog[0].pricing"],
      [[{ sku: "a", name: "A", basePrice: 1, tiers: [] }], "catalog[0].tiers"],
      [[protoKeyed('{"sku":"a","name":"A","basePrice":1,"__proto__":{"tiers":[]}}')], "catalog[0].__proto__"],
      [[{ sku: "p", name: "P", pricing: "package", packagePrice: 5 }], "catalog[0].packageSize"],
      [[{ sku: "p", name: "P", pricing: "package", packageSize: 10 }], "catalog[0].packagePrice"],
      [[{ sku: "p", name: "P", pricing: "package", packageSize: 10, basePrice: 5 }], "catalog[0].basePrice"],
      [[{ sku: "p", name: "P", pricing: "package", packageSize: 10, packagePrice: 5, bands: [{ unitPrice: 1 }] }], "catalog[0].bands"],
      [[{ sku: "a", name: "A", basePrice: 1, freeUnits: 3 }], "catalog[0].freeUnits"],
      [[{ sku: "v", name: "V", pricing: "volume", packageSize: 10, bands: [{ unitPrice: 1 }] }], "catalog[0].packageSize"],
      [[{ sku: "v", name: "V", pricing: "volume", bands: [{ unitPrice: 1, flat_fee: 5 }] }], "catalog[0].bands[0].flat_fee"],
      [[protoKeyed('{"sku":"p","name":"P","pricing":"package","packageSize":10,"packagePrice":5,"__proto__":{"freeUnits":1}}')], "catalog[0].__proto__"],
      ...NOT_CREDITS.filter((v) => v !== undefined && v !== 0).flatMap((v) => [
        [[{ sku: "p", name: "P", pricing: "package", packageSize: v, packagePrice: 5 }], "catalog[0].packageSize"],
        [[{ sku: "p", name: "P", pricing: "package", packageSize: 10, packagePrice: v }], "catalog[0].packagePrice"],
        // The optional two read null as absent, as upTo does.
        ...(v === null
          ? []
          : [
              [[{ sku: "p", name: "P", pricing: "package", packageSize: 10, packagePrice: 5, freeUnits: v }], "catalog[0].freeUnits"],
              [[{ sku: "v", name: "V", pricing: "volume", bands: [{ unitPrice: 1, flatFee: v }] }], "catalog[0].bands[0].flatFee"],
            ]),
      ]),
      [[{ sku: "p", name: "P", pricing: "package", packageSize: 0, packagePrice: 5 }], "catalog[0].packageSize"],
      [[{ sku: "p", name: "P", pricing: "package", packageSize: 1e9 + 1, packagePrice: 5 }], "catalog[0].packageSize"],
      [[{ sku: "p", name: "P", pricing: "package", packageSize: 10, packagePrice: 5, freeUnits: 1e9 + 1 }], "catalog[0].freeUnits"],
    ];
    for (const [products, field] of bad) {
      const e = await fails(AllyError, "INVALID_INPUT", () => new Catalog(products), field);
      equal(e.details.field, field, "details.field");
    }
    await fails(AllyError, "INVALID_INPUT", () => new Catalog({ basic: { basePrice: 1 } }));
    await fails(AllyError, "INVALID_INPUT", () => quote(GOLDEN_REQUEST, "not a catalog"));
    still();
  });

  if (!Ally) {
    // The pricing-only module: the pure functions above, and nothing of the engine.
    t("the pricing module carries no engine", () => {
      equal([typeof lib.Ally, typeof lib.memoryStorage], ["undefined", "undefined"], "engine exports");
      equal([typeof AllyError, typeof Catalog, typeof verifyQuote], ["function", "function", "function"], "pricing exports");
    });
    return h;
  }

  t("Ally: config defaults, validation and conversion", async () => {
    const ally = new Ally();
    equal(ally.tierCost(1000, "gold"), 850, "tierCost");
    equal(ally.creditsToMoney(700), "7.00", "700 credits");
    equal(ally.creditsToMoney(123456), "1234.56", "123456 credits");
    equal(ally.moneyToCredits("7.00"), 700, "7.00");
    equal(ally.moneyToCredits(19.99), 1999, "19.99");
    for (const bad of NOT_DECIMALS.filter((d) => d !== "0.12345").concat(["1.234", 0.1 + 0.2, NaN, -0, {}])) {
      await fails(AllyError, "INVALID_INPUT", () => ally.moneyToCredits(bad), `money ${String(bad)}`);
    }
    const yen = new Ally({ config: { currency: "JPY", creditConversionRate: 1 } });
    equal(yen.creditsToMoney(700), "700", "JPY has no minor unit");
    const custom = new Ally({ config: { tiers: { silver: { discount: "0.1" } }, defaultTier: "silver", rounding: "down", lowCreditThreshold: 100, urls: { dashboard: "/p" }, autoProvisionWallet: false, currency: { code: "KWD" } } });
    equal(custom.tierCost(1005, "silver"), 904, "silver, rounding down");
    equal(custom.creditsToMoney(1), "0.010", "KWD has three decimals");
    const badConfigs = [
      [{ config: { defaultTier: "diamond" } }, "defaultTier"],
      [{ config: { creditConversionRate: 0 } }, "creditConversionRate"],
      [{ config: { creditConversionRate: 1.5 } }, "creditConversionRate"],
      [{ config: { lowCreditThreshold: -1 } }, "lowCreditThreshold"],
      [{ config: { lowCreditThreshold: NaN } }, "lowCreditThreshold"],
      [{ config: { autoProvisionWallet: "yes" } }, "autoProvisionWallet"],
      [{ config: { urls: { dashboard: "" } } }, "urls.dashboard"],
      [{ config: { urls: { home: "/" } } }, "urls.home"],
      [{ config: { tiers: { gold: { discount: "2" } } } }, "tiers.gold.discount"],
      [{ config: { currency: "usd" } }, "currency"],
      [{ config: { currency: "XYZ" } }, "currency"],
      [{ config: { colour: "red" } }, "colour"],
      [{ config: protoKeyed('{"__proto__": {"defaultTier": "gold"}}') }, "__proto__"],
      [{ config: Object.create({ defaultTier: "gold" }) }, "config"],
      [{ storage: 5 }, "storage"],
      [{ storage: { get() {} } }, "storage.find"],
      [{ mail: {} }, "mail.send"],
      [{ clock: 5 }, "clock.now"],
      [{ colour: 1 }, "colour"],
      [Object.create({ config: {} }), "options"],
    ];
    for (const [options, key] of badConfigs) {
      const e = await fails(AllyError, "INVALID_CONFIG", () => new Ally(options), `config ${key}`);
      equal(e.details.key, key, "details.key");
    }
    still();
  });

  t("a polluted Object.prototype reaches nothing, and objects whose traps throw are refused", async () => {
    const polluted = [];
    const pollute = {
      mail: { send: (m) => void polluted.push(["mail", m.to]) },
      onProgress: (p) => void polluted.push(["progress", p.phase]),
      // A polluted handle method would make any plain storage the first memory storage made.
      __allyStorageHandle: () => 1,
      // Optional storage methods, and fields of a host's answers: inherited, they would make a
      // plain storage look as if it locked and combined, or every record look like an answer.
      lock: () => void polluted.push(["lock"]),
      unlock: () => void polluted.push(["unlock"]),
      combine: () => void polluted.push(["combine"]),
      answered: "polluted",
      indexes: { polluted: "yes" },
      send: () => void polluted.push(["send"]),
      now: () => void polluted.push(["now"]),
    };
    const inner = memoryStorage();
    let hostCalls = 0;
    const counted = (name) => (...args) => ((hostCalls += 1), inner[name](...args));
    const plain = Object.fromEntries(["get", "find", "put", "append", "read", "findClaim"].map((name) => [name, counted(name)]));
    Object.assign(Object.prototype, pollute);
    try {
      const ally = new Ally({ config: { lowCreditThreshold: 50 }, storage: plain });
      const r = await ally.make().user(1).company("Polluted").email("ops@example.test").create();
      await ally.addCredits(r, 100);
      const entry = await ally.provision(r, 60);
      equal(entry.balanceAfter, 40, "provisioned, crossing the threshold");
      await ally.commissions.process("2026-01-01", "2026-02-01", {});
      equal(polluted, [], "neither the inherited mailer nor the inherited onProgress was called");
      ok(hostCalls > 0, "the host's own storage is used");
      const e = await fails(AllyError, "INVALID_CONFIG", () => new Ally({ mail: {} }), "a mailer that only inherits send");
      equal(e.details.key, "mail.send", "named");
      await fails(AllyError, "INVALID_CONFIG", () => new Ally({ clock: {} }), "a clock that only inherits now");
      // A class-based storage keeps its methods on its prototype: those are its own class's.
      class Stored {
        constructor() { this.inner = memoryStorage(); }
        get(...a) { return this.inner.get(...a); }
        find(...a) { return this.inner.find(...a); }
        put(...a) { return this.inner.put(...a); }
        append(...a) { return this.inner.append(...a); }
        read(...a) { return this.inner.read(...a); }
        findClaim(...a) { return this.inner.findClaim(...a); }
      }
      const classy = new Ally({ storage: new Stored() });
      const c = await classy.make().user(3).company("Class-based").create();
      equal((await classy.addCredits(c, 5)).balanceAfter, 5, "a class-based storage works");
      equal(polluted, [], "nothing inherited was called");
    } finally {
      for (const key of Object.keys(pollute)) delete Object.prototype[key];
    }
    // Traps that throw, on objects with a key each (so that every trap is reached), and a
    // revoked Proxy.
    const trap = (name, target) => new Proxy(target, { [name]() { throw new Error(`the ${name} trap`); } });
    for (const name of ["ownKeys", "getPrototypeOf", "getOwnPropertyDescriptor", "get"]) {
      await fails(AllyError, "INVALID_CONFIG", () => new Ally(trap(name, { config: {} })), `options with a throwing ${name} trap`);
      await fails(AllyError, "INVALID_INPUT", () => quote(trap(name, { tier: "gold" }), []), `a quote request with a throwing ${name} trap`);
    }
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    await fails(AllyError, "INVALID_CONFIG", () => new Ally(revoked.proxy), "revoked options");
    await fails(AllyError, "INVALID_INPUT", () => quote(revoked.proxy, []), "a revoked quote request");
    await fails(AllyError, "INVALID_INPUT", () => quote({ tier: "gold", lines: [revoked.proxy] }, []), "a revoked quote line");
    // Objects without a prototype are plain objects: their own properties are read.
    const bare = new Ally();
    const progress = [];
    await bare.commissions.process("2026-01-01", "2026-02-01", Object.assign(Object.create(null), { onProgress: (p) => progress.push(p.phase) }));
    ok(progress.length > 0, "onProgress of an object without a prototype is called");
    const throwingItem = [];
    Object.defineProperty(throwingItem, 0, { get() { throw new Error("the item's getter"); }, enumerable: true });
    const throwingArray = new Proxy([{ sku: "a", quantity: 1 }], { get(target, key) { if (key === "0") throw new Error("the array's trap"); return Reflect.get(target, key); } });
    for (const [lines, what] of [[throwingItem, "an item whose getter throws"], [throwingArray, "an array whose trap throws"]]) {
      await fails(AllyError, "INVALID_INPUT", () => quote({ tier: "gold", lines }, []), `a quote with ${what}`);
    }
    const ally = new Ally();
    const r = await ally.make().user(2).company("After").create();
    await ally.addCredits(r, 5);
    equal(await ally.balance(r), 5, "the module keeps working");
  });

  t("resellers: builder, lookups, scopes, metadata, tier cost", async () => {
    let tick = 0;
    const clock = () => new Date(Date.UTC(2026, 2, 1, 9, 0, tick++));
    const ally = new Ally({ clock });
    const r = await ally.make().user(1).company("Elite Global").email("ops@elite.example").platinum().create();
    equal([r.userId, r.companyName, r.email, r.tier, r.status, r.version, r.createdAt], [1, "Elite Global", "ops@elite.example", "platinum", "active", 1, "2026-03-01T09:00:00.000Z"], "record");
    ok(/^RS-[0-9A-HJKMNP-TV-Z]{10}$/.test(r.refid), `refid ${r.refid}`);
    equal(await ally.calculateTierCost(r, 1000), 700, "by record");
    equal(await ally.calculateTierCost(r.id, 1000), 700, "by id");
    equal((await ally.find(r.id)).id, r.id, "find");
    equal((await ally.findByUser(1)).id, r.id, "findByUser");
    equal((await ally.findByUser("1")).id, r.id, "findByUser string");
    equal((await ally.findByRefid(r.refid)).id, r.id, "findByRefid");
    equal(await ally.find("rs_none"), null, "find missing");
    equal(await ally.findByUser(99), null, "findByUser missing");
    await fails(AllyError, "ALREADY_EXISTS", () => ally.make().user(1).company("Again").create());
    const template = ally.make().company("Template Co").gold();
    const g1 = await template.user("u-2").create();
    const g2 = await template.user(3).metadata({ logo: "https://x.example/logo.png", colours: ["#000"] }).create();
    const s = await ally.make().user(4).company("Plain").create();
    equal([g1.tier, g2.tier, s.tier, g2.metadata.colours[0]], ["gold", "gold", "standard", "#000"], "tiers and metadata");
    equal((await ally.list()).map((x) => x.userId), [1, "u-2", 3, 4], "list, oldest first");
    equal((await ally.list({ tier: "gold" })).length, 2, "gold scope");
    equal((await ally.list({ status: "active" })).length, 4, "active scope");
    equal((await ally.list({ tier: "gold", status: "suspended" })).length, 0, "both scopes");
    const held = await ally.updateMetadata(r, "hold_provisioning", true);
    equal([held.metadata.hold_provisioning, held.version], [true, 2], "metadata set");
    const cleared = await ally.updateMetadata(r.id, "hold_provisioning", undefined);
    equal([cleared.metadata, cleared.version], [{}, 3], "metadata removed");
    equal(JSON.parse(JSON.stringify(cleared)), cleared, "records are plain JSON");
  });

  t("resellers: bad input at every method, state unchanged", async () => {
    const ally = new Ally();
    const r = await ally.make().user(1).company("Elite").create();
    const b = ally.make();
    for (const bad of [NaN, Infinity, -1, 0, 1.5, 2 ** 53, -0, null, {}, "", " 1", true]) {
      await fails(AllyError, "INVALID_INPUT", () => b.user(bad), `user(${String(bad)})`);
    }
    for (const bad of ["", "   ", 5, null, "x".repeat(201)]) await fails(AllyError, "INVALID_INPUT", () => b.company(bad));
    for (const bad of ["", "a", "a@b", "a b@c.co", 5]) await fails(AllyError, "INVALID_INPUT", () => b.email(bad));
    await fails(AllyError, "UNKNOWN_TIER", () => b.tier("diamond"));
    await fails(AllyError, "INVALID_INPUT", () => b.tier(7));
    for (const bad of [[1], "x", null, { f() {} }, { n: NaN }, { big: 1n << 70n }, protoKeyed('{"__proto__": 1}'), { "": 1 }, { blob: "x".repeat(17000) }]) {
      await fails(AllyError, "INVALID_INPUT", () => b.metadata(bad));
    }
    await fails(AllyError, "INVALID_INPUT", () => b.user(2).create(), "create without company");
    await fails(AllyError, "INVALID_INPUT", () => b.company("No User").create(), "create without user");
    await fails(AllyError, "INVALID_INPUT", () => ally.find(5));
    await fails(AllyError, "INVALID_INPUT", () => ally.findByUser(NaN));
    await fails(AllyError, "INVALID_INPUT", () => ally.findByRefid(null));
    await fails(AllyError, "INVALID_INPUT", () => ally.list({ tier: 5 }));
    await fails(AllyError, "INVALID_INPUT", () => ally.list({ status: "asleep" }));
    await fails(AllyError, "INVALID_INPUT", () => ally.list({ limit: 5 }));
    await fails(AllyError, "UNKNOWN_TIER", () => ally.list({ tier: "diamond" }));
    await fails(AllyError, "INVALID_INPUT", () => ally.updateMetadata(r, "__proto__", 1));
    await fails(AllyError, "INVALID_INPUT", () => ally.updateMetadata(r, 5, 1));
    await fails(AllyError, "INVALID_INPUT", () => ally.updateMetadata(r, "k", NaN));
    await fails(AllyError, "INVALID_INPUT", () => ally.updateMetadata(Object.create({ id: r.id }), "k", 1));
    await fails(AllyError, "NOT_FOUND", () => ally.updateMetadata("rs_none", "k", 1));
    await fails(AllyError, "NOT_FOUND", () => ally.calculateTierCost("rs_none", 1));
    for (const bad of NOT_CREDITS) await fails(AllyError, "INVALID_INPUT", () => ally.calculateTierCost(r, bad));
    const after = await ally.find(r.id);
    equal([after.version, after.metadata, (await ally.list()).length], [1, {}, 1], "nothing changed");
  });

  t("a shared memoryStorage is one store", async () => {
    const storage = memoryStorage();
    const a = new Ally({ storage });
    const b = new Ally({ storage });
    const r = await a.make().user(7).company("Shared").create();
    equal((await b.findByUser(7)).id, r.id, "seen by the other instance");
    await fails(AllyError, "ALREADY_EXISTS", () => b.make().user(7).company("Twice").create());
    const stored = storage.get("resellers", r.id);
    equal([stored.id, stored.version, JSON.parse(stored.data).companyName, stored.indexes.userId], [r.id, 1, "Shared", "7"], "the JS storage contract on memoryStorage");
  });

  t("memoryStorage() methods check their arguments like every other function", async () => {
    const s = memoryStorage();
    const rec = { id: "a", version: 1, data: "{}", indexes: {} };
    const bad = [
      () => s.get(5, "a"),
      () => s.get("c", null),
      () => s.find("c", { limit: 0 }),
      () => s.find("c", { limit: 1.5 }),
      () => s.find("c", { limit: 10, colour: "red" }),
      () => s.find("c", { limit: 10, index: "tier" }),
      () => s.find("c", protoKeyed('{"limit": 10, "__proto__": {}}')),
      () => s.put("c", { id: "a" }, 0, []),
      () => s.put("c", rec, NaN, []),
      () => s.put("c", rec, -1, []),
      () => s.put("c", rec, 0, "userId"),
      () => s.put("c", rec, 0, [5]),
      () => s.append("s", 0, [1]),
      () => s.append("s", 0.5, ["x"]),
      () => s.read("s", -1, 10),
      () => s.read("s", 0, Infinity),
    ];
    for (const call of bad) await fails(AllyError, "INVALID_INPUT", call, String(call));
    equal(s.find("c", { limit: 10 }), [], "nothing written");
    equal(s.read("s", 0, 10), [], "nothing appended");
    equal(s.put("c", rec, 0, []), "written", "still works");
  });

  for (const mode of ["sync", "async"]) {
    t(`a host storage (${mode}) holds resellers under the contract`, async () => {
      const host = hostStorage({ async: mode === "async" });
      const ally = new Ally({ storage: host });
      const r = await ally.make().user(1).company("Hosted").gold().create();
      equal((await ally.findByRefid(r.refid)).id, r.id, "findByRefid");
      await fails(AllyError, "ALREADY_EXISTS", () => ally.make().user(1).company("Again").create());
      const updated = await ally.updateMetadata(r, "k", { nested: [1, "two"] });
      equal(updated.version, 2, "version");
      equal(host.dump("resellers").length, 1, "one stored record");
      equal((await ally.list({ tier: "gold" })).length, 1, "indexed scope");
    });
  }

  t("objects without a prototype are objects: options, and a host record's indexes", async () => {
    const options = Object.assign(Object.create(null), { config: Object.assign(Object.create(null), { lowCreditThreshold: 7 }) });
    const ally = new Ally(options);
    const r = await ally.make().user(1).company("Bare").create();
    equal(r.companyName, "Bare", "options without a prototype are read");
    const host = hostStorage();
    const bare = { ...host, get: (name, id) => {
      const found = host.get(name, id);
      return found ? { ...found, indexes: Object.assign(Object.create(null), found.indexes) } : found;
    } };
    const onBare = new Ally({ storage: bare });
    const b = await onBare.make().user(2).company("Indexed").create();
    equal((await onBare.find(b.id)).companyName, "Indexed", "a record whose indexes have no prototype");
  });

  t("a storage whose find answers out of id order is STORAGE_FAILED, not a loop", async () => {
    const host = hostStorage();
    const ally = new Ally({ storage: host });
    await ally.make().user(1).company("A").create();
    await ally.make().user(2).company("B").create();
    const reversed = { ...host, find: (name, query) => host.find(name, query).slice().reverse() };
    await fails(AllyError, "STORAGE_FAILED", () => new Ally({ storage: reversed }).list(), "reversed");
    equal((await ally.list()).length, 2, "in order");
  });

  for (const failure of ["throw", "reject", "garbage", "hostile", "hostile-reject", "proxy", "revoked", "then-throws", "constructor-throws"]) {
    t(`a storage that ${failure}s gives STORAGE_FAILED and writes nothing`, async () => {
      const host = hostStorage({ async: failure.endsWith("reject") });
      const ally = new Ally({ storage: host });
      const r = await ally.make().user(1).company("Before").create();
      let user = 100;
      let created = 0;
      for (const method of ["get", "find", "put"]) {
        host.failNext(method, failure);
        const attempts = [
          async () => { await ally.make().user(user++).company("During").create(); created += 1; },
          () => ally.updateMetadata(r, "k", method),
          () => ally.findByUser(1),
          () => ally.list(),
          () => ally.calculateTierCost(r, 1000),
        ];
        let failed = 0;
        for (const attempt of attempts) {
          try {
            await attempt();
          } catch (e) {
            ok(e instanceof AllyError && e.code === "STORAGE_FAILED", `${method}: ${e.code} ${e.message}`);
            failed += 1;
          }
        }
        ok(failed >= 1, `${method} failure surfaced`);
        host.failNext(method, null);
      }
      const stored = host.dump("resellers");
      equal(stored.length, 1 + created, "exactly the creates that succeeded");
      // Only the "find" round left get and put working, so only its update landed.
      const after = await ally.find(r.id);
      equal([after.companyName, after.version, after.metadata.k], ["Before", 2, "find"], "writes landed only where storage allowed");
      still();
    });
  }

  t("a clock that throws or lies is reported, not trusted", async () => {
    const broken = new Ally({ clock: { now() { throw new Error("no time") } } });
    const e = await fails(AllyError, "INVALID_CONFIG", () => broken.make().user(1).company("X").create());
    equal(e.details.key, "clock", "key");
    const lying = new Ally({ clock: () => "yesterday" });
    await fails(AllyError, "INVALID_CONFIG", () => lying.make().user(1).company("X").create());
    const iso = new Ally({ clock: () => "2026-01-02T03:04:05+02:00" });
    equal((await iso.make().user(1).company("X").create()).createdAt, "2026-01-02T01:04:05.000Z", "in UTC");
  });

  t("wallets: top-up, provision, bulk, idempotency, history and balance", async () => {
    const ally = new Ally({ config: { lowCreditThreshold: 100 } });
    const r = await ally.make().user(1).company("Wallet Co").email("ops@wallet.example").create();
    equal(await ally.balance(r), 0, "a new wallet is empty");
    const top = await ally.addCredits(r, 1000, { idempotencyKey: "top-1", memo: "opening" });
    equal([top.kind, top.amount, top.balanceAfter, top.sequence, top.memo], ["credit", 1000, 1000, 1, "opening"], "top-up entry");
    ok(/^[0-9a-f]{64}$/.test(top.hash), "a SHA-256 hash");
    const again = await ally.addCredits(r, 1000, { idempotencyKey: "top-1", memo: "opening" });
    equal(again, { ...top, replayed: true }, "the same key and payload answer the first entry, as a replay");
    equal(top.replayed, false, "the first answer is no replay");
    await fails(AllyError, "IDEMPOTENCY_MISMATCH", () => ally.addCredits(r, 999, { idempotencyKey: "top-1", memo: "opening" }));
    const one = await ally.provision(r.id, 250, "site A");
    equal([one.kind, one.amount, one.balanceAfter], ["debit", 250, 750], "provision");
    const bulk = await ally.provisionBulk(r, [{ cost: 100, memo: "b1" }, { cost: 50 }], { idempotencyKey: "bulk-1" });
    equal(bulk.map((e) => [e.balanceAfter, e.batch]), [[650, { index: 0, size: 2 }], [600, { index: 1, size: 2 }]], "bulk");
    const refused = await fails(AllyError, "INSUFFICIENT_CREDITS", () => ally.provisionBulk(r, [{ cost: 500 }, { cost: 200 }, { cost: 1 }]));
    equal(refused.details.items, ["LINKED_ITEM_FAILED", "INSUFFICIENT_CREDITS", "LINKED_ITEM_FAILED"], "per-item codes");
    await fails(AllyError, "INSUFFICIENT_CREDITS", () => ally.provision(r, 601));
    await fails(AllyError, "NOT_FOUND", () => ally.provision("rs_none", 1));
    equal(await ally.balance(r), 600, "refusals wrote nothing");
    const last = await ally.transactions(r, { limit: 2 });
    equal(last.map((e) => e.sequence), [4, 3], "newest first");
    equal((await ally.transactions(r, { before: 3 })).map((e) => e.sequence), [2, 1], "before");
    const held = await ally.updateMetadata(r, "hold_provisioning", true);
    await fails(AllyError, "PROVISIONING_HELD", () => ally.provision(held, 1));
    await ally.updateMetadata(r, "hold_provisioning", undefined);
    const events = [];
    const off = ally.on("lowCredit", (e) => events.push([e.reseller.id, e.balance, e.threshold]));
    await ally.provision(r, 550);
    await ally.provision(r, 10);
    equal(events, [[r.id, 50, 100]], "one lowCredit per crossing");
    off();
    const scope = ally.asReseller(r.id);
    equal(typeof scope.addCredits, "undefined", "a reseller handle has no top-up");
    equal(await scope.balance(r.id), 40, "own balance");
    const other = await ally.make().user(2).company("Other").create();
    // Another reseller answers exactly as a missing one: NOT_FOUND naming only what was passed.
    for (const [call, what] of [
      [(x) => scope.provision(x, 1), "provision"],
      [(x) => scope.provisionBulk(x, [{ cost: 1 }]), "provisionBulk"],
      [(x) => scope.balance(x), "balance"],
      [(x) => scope.transactions(x), "transactions"],
      [(x) => scope.ledger(x), "ledger"],
      [(x) => scope.exportLedger(x), "exportLedger"],
    ]) {
      const hidden = await fails(AllyError, "NOT_FOUND", () => call(other.id), `${what}: another reseller`);
      const missing = await fails(AllyError, "NOT_FOUND", () => call("rs_missing"), `${what}: a missing reseller`);
      equal(hidden.message.replace(other.id, "<id>"), missing.message.replace("rs_missing", "<id>"), `${what}: the same answer`);
      ok(!hidden.message.includes(r.id) && !JSON.stringify(hidden.details).includes(r.id), `${what}: the handle's own id is not told`);
      await fails(AllyError, "NOT_FOUND", () => call(other.refid), `${what}: another's refid`);
      equal(hidden.httpStatus, 404, `${what}: 404`);
    }
    equal(await scope.balance(), 40, "the handle's own by default");
    equal(await scope.balance(r.refid), 40, "its refid");
    equal(await scope.balance(r), 40, "its record");
    const debit = await scope.provision(5, "own by default", { idempotencyKey: "scoped-1" });
    equal([debit.kind, debit.amount, debit.balanceAfter, debit.memo, debit.replayed], ["debit", 5, 35, "own by default", false], "provision(cost, memo, options)");
    const replay = await scope.provision(5, "own by default", { idempotencyKey: "scoped-1" });
    equal([replay.id, replay.balanceAfter, replay.replayed], [debit.id, 35, true], "a replay says so");
    equal((await scope.provision(r.refid, 1)).balanceAfter, 34, "provision(refid, cost)");
    const scopedBulk = await scope.provisionBulk([{ cost: 2 }, { cost: 3 }], { idempotencyKey: "scoped-bulk" });
    equal(scopedBulk.map((e) => [e.amount, e.replayed]), [[2, false], [3, false]], "provisionBulk(items, options)");
    equal((await scope.provisionBulk([{ cost: 2 }, { cost: 3 }], { idempotencyKey: "scoped-bulk" })).map((e) => e.replayed), [true, true], "a bulk replay");
    equal((await scope.transactions({ limit: 2 })).map((e) => e.amount), [3, 2], "transactions(options)");
    equal((await scope.transactions(undefined, { limit: 1 })).map((e) => e.amount), [3], "transactions(undefined, options)");
    equal((await scope.transactions(r, { limit: 1 })).map((e) => e.amount), [3], "transactions(record, options)");
    equal((await scope.ledger()).length, (await ally.ledger(r)).length, "ledger()");
    equal((await scope.findByIdempotencyKey("scoped-1")).map((e) => e.id), [debit.id], "findByIdempotencyKey(key)");
    equal((await scope.findByIdempotencyKey(r.refid, "scoped-bulk")).map((e) => e.amount), [2, 3], "a bulk's entries, by refid");
    equal(await ally.findByIdempotencyKey(r, "never-used"), [], "a key never used");
    equal((await ally.findByIdempotencyKey(r.id, "scoped-1"))[0].replayed, undefined, "a lookup is no replay");
    await fails(AllyError, "NOT_FOUND", () => scope.findByIdempotencyKey(other.id, "scoped-1"), "another reseller's keys");
    await fails(AllyError, "INVALID_INPUT", () => ally.findByIdempotencyKey(r, 5), "a key is a string");
    await fails(AllyError, "INVALID_INPUT", () => ally.findByIdempotencyKey(r, "  "), "a blank key");

    equal(lib.validateLedger([debit]).entries, 1, "a written entry with replayed validates");
    await fails(AllyError, "INVALID_INPUT", () => scope.provision(1, "m", {}, "extra"), "more arguments than the short form takes");
    await fails(AllyError, "INVALID_INPUT", () => scope.provisionBulk([{ cost: 1 }], {}, "extra"), "bulk: one more");
    await fails(AllyError, "INVALID_INPUT", () => scope.transactions({ limit: 1 }, {}), "transactions: one more");
    await fails(AllyError, "INVALID_INPUT", () => scope.provision(1.5), "a fraction of a credit");
    equal(await ally.balance(other), 0, "the other reseller is untouched");
    const credit = await ally.addCredits(other, 10, { idempotencyKey: "top-1" });
    equal([credit.replayed, (await ally.addCredits(other, 10, { idempotencyKey: "top-1" })).replayed], [false, true], "addCredits says whether it replayed");
  });

  t("onEvent reports each host storage call, timed, and replays, retries and outbox attempts, shaped like spans", async () => {
    const host = hostStorage({ async: true });
    const events = [];
    const failing = { sends: 0, send() { this.sends += 1; if (this.sends === 1) throw new Error("smtp down"); } };
    const ally = new Ally({ storage: host, mail: failing, config: { lowCreditThreshold: 100 }, onEvent: (event) => events.push(event) });
    const r = await ally.make().user(1).company("Observed").email("ops@observed.example").create();
    await ally.addCredits(r, 150);
    events.length = 0;
    const debit = await ally.provision(r, 60, "site", { idempotencyKey: "obs-1" });
    const names = events.map((e) => e.name);
    ok(names.includes("ally.storage.append"), `an append: ${names}`);
    const append = events.find((e) => e.name === "ally.storage.append");
    equal([append.status, append.attributes["ally.storage.operation"], append.attributes["ally.storage.outcome"], append.attributes["ally.storage.stream"]], ["ok", "append", "written", `ledger:${r.id}`], "the append span");
    ok(typeof append.startTime === "number" && append.startTime > 1.7e12 && append.duration >= 0, `timed: ${append.startTime} ${append.duration}`);
    ok(names.includes("ally.outbox.attempt"), `the low-credit mail's attempt: ${names}`);
    const attempt = events.find((e) => e.name === "ally.outbox.attempt");
    equal([attempt.status, attempt.attributes["ally.outbox.outcome"], attempt.attributes["ally.outbox.attempt"], attempt.attributes["error.message"]], ["error", "failed", 1, "Error: smtp down"], "a failed delivery");
    events.length = 0;
    await ally.provision(r, 60, "site", { idempotencyKey: "obs-1" });
    const replay = events.find((e) => e.name === "ally.wallet.replay");
    equal([replay?.attributes["ally.reseller.id"], replay?.attributes["ally.idempotency_key"], replay?.duration], [r.id, "obs-1", 0], "a replay");
    // A second engine on the same storage appends first: this one's append is stale, and retried.
    const other = new Ally({ storage: host });
    await other.provision(r, 1);
    events.length = 0;
    equal((await ally.provision(r, 1)).balanceAfter, debit.balanceAfter - 2, "decided again on the other's entry");
    equal(events.filter((e) => e.name === "ally.wallet.retry").map((e) => e.attributes["ally.retry.reason"]), ["stale"], "a retry");
    ok(events.some((e) => e.name === "ally.storage.append" && e.attributes["ally.storage.outcome"] === "stale"), "the stale append");
    // A failing storage call is an error span; a listener that throws changes nothing.
    host.failNext("get", "throw");
    events.length = 0;
    await fails(AllyError, "STORAGE_FAILED", () => new Ally({ storage: host, onEvent: (e) => events.push(e) }).balance(r));
    host.failNext("get", null);
    equal([events[0]?.name, events[0]?.status, events[0]?.attributes["error.message"]], ["ally.storage.get", "error", "Error: get exploded"], "an error span");
    ok(events[0]?.exception instanceof Error && events[0].exception.message === "get exploded", "carrying what the storage threw");
    const made = AllyError.storageFailed("get", "the database could not be reached", new Error("ECONNREFUSED 10.0.0.5:5432"));
    equal([made.code, made.httpStatus, made.message, made.cause?.message], ["STORAGE_FAILED", 503, "storage get failed: the database could not be reached", "ECONNREFUSED 10.0.0.5:5432"], "an adapter's error");
    ok(!JSON.stringify(made).includes("10.0.0.5") && !Object.keys(made).includes("cause"), "its cause is not enumerable");
    const loud = new Ally({ storage: host, onEvent: () => { throw new Error("listener down"); } });
    equal(await loud.balance(r), debit.balanceAfter - 2, "a throwing listener is dropped");
    const rejecting = new Ally({ storage: host, onEvent: () => Promise.reject(new Error("async listener down")) });
    equal(await rejecting.balance(r), debit.balanceAfter - 2, "a rejecting listener is dropped");
    await fails(AllyError, "INVALID_CONFIG", () => new Ally({ onEvent: "log" }), "onEvent must be a function");
  });

  t("transactions page by time: [since, until), newest first, with Dates, ISO texts or milliseconds", async () => {
    let now = Date.UTC(2026, 2, 1);
    const storage = memoryStorage();
    const ally = new Ally({ storage, clock: () => new Date(now) });
    const r = await ally.make().user(1).company("Timed").create();
    await ally.addCredits(r, 100);
    for (let day = 2; day <= 10; day++) {
      now = Date.UTC(2026, 2, day);
      await ally.provision(r, 1, `day ${day}`);
    }
    const memos = (entries) => entries.map((e) => e.memo);
    equal(memos(await ally.transactions(r, { since: "2026-03-04", until: new Date(Date.UTC(2026, 2, 7)) })), ["day 6", "day 5", "day 4"], "a window");
    equal(memos(await ally.transactions(r, { until: Date.UTC(2026, 2, 4), limit: 1 })), ["day 3"], "the newest before a time");
    equal(memos(await ally.transactions(r, { since: "2026-03-09T00:00:00Z" })), ["day 10", "day 9"], "since alone");
    equal(memos(await ally.asReseller(r).transactions({ since: "2026-03-10" })), ["day 10"], "through a reseller's handle");
    // A clock set back: the entry takes the latest time, so times never go backwards.
    now = Date.UTC(2026, 2, 2);
    const late = await new Ally({ storage, clock: () => new Date(now) }).provision(r, 1, "late");
    equal(late.at, "2026-03-10T00:00:00.000Z", "the latest entry's time");
    for (const bad of [{ since: "yesterday" }, { until: NaN }, { since: {} }, { until: true }]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.transactions(r, bad), JSON.stringify(bad));
    }
  });

  t("a reseller's handle learns nothing of other resellers' client emails, and cannot take them", async () => {
    const storage = memoryStorage();
    const ally = new Ally({ storage });
    const a = await ally.make().user(1).company("A").create();
    const b = await ally.make().user(2).company("B").create();
    const theirs = await ally.asReseller(b).clients.make().name("B's").email("ceo@target.example").create();
    const mine = await ally.asReseller(a).clients.make().name("A's").email("ceo@target.example").create();
    equal([theirs.resellerId, mine.resellerId], [b.id, a.id], "each reseller has its own");
    await fails(AllyError, "DUPLICATE_EMAIL", () => ally.asReseller(a).clients.make().name("A's again").email("CEO@target.example").create(), "its own duplicate");
    // A store written before emails were per reseller: its clients are indexed again, once.
    const record = await storage.get("clients", mine.id);
    const { resellerEmail, ...old } = record.indexes;
    equal(typeof resellerEmail, "string", "the per-reseller index");
    equal(await storage.put("clients", { ...record, version: record.version + 1, indexes: { ...old, email: "ceo@target.example" } }, record.version, ["email", "refid"]), "written", "an old-format record, its email claimed network-wide");
    const marker = await storage.get("client_state", "indexes");
    equal(await storage.put("client_state", { ...marker, version: marker.version + 1, data: JSON.stringify({ clients: 0 }) }, marker.version, []), "written", "an old store");
    const later = new Ally({ storage });
    await fails(AllyError, "DUPLICATE_EMAIL", () => later.asReseller(a).clients.make().name("After").email("ceo@target.example").create(), "found once indexed again");
    equal(typeof (await storage.get("clients", mine.id)).indexes.resellerEmail, "string", "re-indexed");
  });

  t("every AllyError carries the HTTP status a service answers with, and details follow the code", async () => {
    const ally = new Ally();
    const r = await ally.make().user(1).company("Statuses").create();
    const status = async (code, call) => (await fails(AllyError, code, call, code)).httpStatus;
    equal(await status("INVALID_INPUT", () => tierCost(1.5, "gold")), 400, "INVALID_INPUT");
    equal(await status("UNKNOWN_TIER", () => tierCost(1, "diamond")), 422, "UNKNOWN_TIER");
    equal(await status("NOT_FOUND", () => ally.balance("rs_none")), 404, "NOT_FOUND");
    equal(await status("ALREADY_EXISTS", () => ally.make().user(1).company("Again").create()), 409, "ALREADY_EXISTS");
    const poor = await fails(AllyError, "INSUFFICIENT_CREDITS", () => ally.provision(r, 5));
    equal([poor.httpStatus, poor.details.balance, poor.details.requested], [402, 0, 5], "INSUFFICIENT_CREDITS");
    await ally.addCredits(r, 5, { idempotencyKey: "k" });
    equal(await status("IDEMPOTENCY_MISMATCH", () => ally.addCredits(r, 6, { idempotencyKey: "k" })), 422, "IDEMPOTENCY_MISMATCH");
    equal(await status("INVALID_CONFIG", () => new Ally({ config: { lowCreditThreshold: -1 } })), 500, "INVALID_CONFIG");
    const bad = await fails(AllyError, "INVALID_INPUT", () => quote({ tier: "gold", lines: [{ sku: "basic", quantity: 1.5 }] }, CATALOG));
    equal(Object.keys(bad.details).sort(), ["field", "reason"], "INVALID_INPUT details");
    equal(typeof bad.httpStatus, "number", "a number");
  });

  t("messages name the kind of value and echo numbers as JavaScript prints them", async () => {
    const ally = new Ally();
    const r = await ally.make().user(1).company("Messages").create();
    const message = async (call) => (await fails(AllyError, "INVALID_INPUT", call)).message;
    equal(await message(() => quote({ tier: "gold", lines: [{ sku: "basic", quantity: 1.5 }] }, CATALOG)), "request.lines[0].quantity: expected a whole number, got a fraction: 1.5", "a quantity is no credit");
    equal(await message(() => quote({ tier: "gold", lines: [{ sku: "basic", quantity: "2" }] }, CATALOG)), "request.lines[0].quantity: expected a whole number (a number), got the string \"2\"", "a quantity's type");
    equal(await message(() => ally.transactions(r, { limit: 1.5 })), "options.limit: expected a whole number, got a fraction: 1.5", "a limit is no credit");
    equal(await message(() => ally.addCredits(r, 1.5)), "amount: credits are whole units, got a fraction: 1.5", "credits are");
    // 9007199254740993 has no double: JavaScript reads it as 9007199254740992 and prints that.
    equal(await message(() => ally.addCredits(r, 9007199254740993)), `amount: credits must be at most 9007199254740991 (2^53 - 1), got ${String(9007199254740993)}`, "echoed as JavaScript prints it");
    equal(await message(() => quote({ tier: "gold", lines: [{ sku: "basic", quantity: 2 ** 60 }] }, CATALOG)), `request.lines[0].quantity: must be at most 9007199254740991 (2^53 - 1), got ${String(2 ** 60)}`, "a large quantity");
    equal(await message(() => tierCost(1e21, "gold")), "basePrice: credits must be at most 9007199254740991 (2^53 - 1), got 1e+21", "an exponent as JavaScript writes it");
    still();
  });

  t("a listener whose Promise has a throwing then is reported, and the provision stands", async () => {
    const ally = new Ally({ config: { lowCreditThreshold: 100 } });
    const r = await ally.make().user(1).company("Listened").create();
    await ally.addCredits(r, 150);
    const reported = [];
    ally.on("listenerError", (e) => reported.push([e.event, String(e.error?.message)]));
    ally.on("lowCredit", () => {
      const promise = Promise.resolve();
      Object.defineProperty(promise, "then", { value() { throw new Error("then of the listener"); } });
      return promise;
    });
    equal((await ally.provision(r, 100)).balanceAfter, 50, "provisioned");
    equal(reported, [["lowCredit", "then of the listener"]], "reported");
    equal(await ally.balance(r), 50, "the instance keeps working");
  });

  t("validateLedger over a long array names the entry that is wrong, wherever it is", async () => {
    const { validateLedger } = lib;
    const ally = new Ally({ storage: memoryStorage() });
    const r = await ally.make().user(1).company("Pages").create();
    await ally.addCredits(r, 10_000);
    await ally.provisionBulk(r.id, Array.from({ length: 2_100 }, () => ({ cost: 1 })));
    const ledger = await ally.ledger(r);
    const audit = validateLedger(ledger);
    equal([audit.ok, audit.entries, audit.balance], [true, 2_101, 7_900], "three pages validate");
    const copy = () => ledger.map((entry) => ({ ...entry }));
    const typed = copy();
    typed[1500].amount = "x";
    const err = await fails(AllyError, "INVALID_INPUT", () => validateLedger(typed), "a string amount on the second page");
    ok(err.message.startsWith("entries[1500].amount"), err.message);
    const classy = copy();
    classy[2050] = Object.assign(new (class Entry {})(), ledger[2050]);
    const err2 = await fails(AllyError, "INVALID_INPUT", () => validateLedger(classy), "a class instance on the third page");
    ok(err2.message.startsWith("entries[2050]"), err2.message);
    const forged = copy();
    forged[1100].amount += 1;
    equal(validateLedger(forged).ok, false, "a forged amount on the second page shows");
  });

  t("validateLedger: an array behind throwing traps, or revoked, is INVALID_INPUT", async () => {
    const { validateLedger } = lib;
    const trap = () => { throw new Error("trap"); };
    const revoked = Proxy.revocable([], {});
    revoked.revoke();
    equal(validateLedger(new Proxy([], { getPrototypeOf: trap })).entries, 0, "a getPrototypeOf trap is not run");
    for (const [entries, what] of [
      [new Proxy([{}], { get: trap }), "get"],
      [new Proxy(new Uint8Array(4), { getPrototypeOf: trap, get: trap }), "a typed array behind traps"],
      [revoked.proxy, "revoked"],
    ]) {
      await fails(AllyError, "INVALID_INPUT", () => validateLedger(entries), what);
    }
    equal(validateLedger([]).ok, true, "the module keeps working");
  });

  t("validateLedger: entries and the binary export agree, and tampering shows", async () => {
    const { validateLedger } = lib;
    const ally = new Ally();
    const r = await ally.make().user(1).company("Audit").create();
    await ally.addCredits(r, 500, { memo: "ünïcode \"quoted\"" });
    for (let i = 0; i < 20; i++) await ally.provision(r, 7, i % 3 ? undefined : `memo ${i}`);
    await ally.provisionBulk(r, [{ cost: 10 }, { cost: 20 }]);
    const entries = await ally.ledger(r);
    const bytes = await ally.exportLedger(r);
    ok(bytes instanceof Uint8Array, "exportLedger gives bytes");
    equal(String.fromCharCode(...bytes.subarray(0, 7)), "ALLYLDG", "magic");
    const fromEntries = validateLedger(entries, { walletId: r.id });
    const fromBytes = validateLedger(bytes, { walletId: r.id });
    equal(fromEntries, fromBytes, "the same report");
    equal([fromBytes.ok, fromBytes.balance, fromBytes.entries], [true, 330, 23], "valid");
    const edited = structuredClone(entries);
    edited[5].amount = 1;
    equal(validateLedger(edited).violations.map((v) => [v.index, v.code]).slice(0, 2), [[5, "BALANCE_MISMATCH"], [5, "HASH_MISMATCH"]], "an edited amount");
    const flipped = bytes.slice();
    flipped[flipped.length - 40] ^= 1;
    ok(!validateLedger(flipped).ok, "a flipped byte breaks the chain");
    equal(validateLedger(bytes, { walletId: "rs_other" }).violations[0].code, "WALLET_MISMATCH", "another wallet");
    equal(validateLedger(bytes, { openingBalance: 5 }).violations[0].code, "BALANCE_MISMATCH", "opening balance");
    for (const bad of [bytes.subarray(0, bytes.length - 1), new Uint8Array([65, 76, 76]), new Uint8Array(0)]) {
      await fails(AllyError, "INVALID_INPUT", () => validateLedger(bad), "a truncated buffer");
    }
    for (const bad of [null, undefined, 5, "[]", {}, [null], [{}], [{ ...entries[0], amount: "5" }], new Float64Array(3)]) {
      await fails(AllyError, "INVALID_INPUT", () => validateLedger(bad), `validateLedger(${typeof bad})`);
    }
    for (const bad of [{ walletId: 5 }, { openingBalance: -1 }, { openingBalance: 1.5 }, { openingBalance: NaN }, { extra: 1 }, protoKeyed('{"__proto__": {}}'), 5]) {
      await fails(AllyError, "INVALID_INPUT", () => validateLedger(entries, bad), `options ${JSON.stringify(bad)}`);
    }
    equal(validateLedger(entries).ok, true, "still works");
  });

  t("wallets: bad input at every function, state unchanged", async () => {
    const ally = new Ally();
    const r = await ally.make().user(1).company("Bad Input").create();
    await ally.addCredits(r, 1000, { idempotencyKey: "k0" });
    const before = await ally.ledger(r);
    for (const bad of NOT_CREDITS) {
      await fails(AllyError, "INVALID_INPUT", () => ally.addCredits(r, bad), `addCredits(${String(bad)})`);
      await fails(AllyError, "INVALID_INPUT", () => ally.provision(r, bad), `provision(${String(bad)})`);
      await fails(AllyError, "INVALID_INPUT", () => ally.provisionBulk(r, [{ cost: bad }]), `provisionBulk cost ${String(bad)}`);
    }
    await fails(AllyError, "INVALID_INPUT", () => ally.provision(r, 0), "zero cost");
    await fails(AllyError, "INVALID_INPUT", () => ally.addCredits(r, 0), "zero top-up");
    for (const target of [5, null, undefined, {}, { id: 5 }, Object.create({ id: r.id })]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.provision(target, 1), `reseller ${String(target)}`);
      await fails(AllyError, "INVALID_INPUT", () => ally.balance(target), `balance of ${String(target)}`);
    }
    for (const memo of [5, "", "   ", "a\u0000b", "x".repeat(513), {}]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.provision(r, 1, memo), `memo ${JSON.stringify(memo)}`);
    }
    for (const options of [5, "k", { idempotencyKey: 5 }, { idempotencyKey: "" }, { key: "k" }, protoKeyed('{"__proto__": {"idempotencyKey": "x"}}')]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.provision(r, 1, undefined, options), `options ${JSON.stringify(options)}`);
      await fails(AllyError, "INVALID_INPUT", () => ally.addCredits(r, 1, options), `addCredits options ${JSON.stringify(options)}`);
    }
    for (const items of [[], null, "x", [null], [{}], [{ cost: 1, extra: 1 }], [{ cost: 1, memo: 5 }], protoKeyed('[{"cost": 1, "__proto__": {}}]'), Array.from({ length: 10001 }, () => ({ cost: 1 }))]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.provisionBulk(r, items), `items ${String(items).slice(0, 20)}`);
    }
    for (const options of [{ limit: 0 }, { limit: 501 }, { limit: 1.5 }, { limit: NaN }, { before: -1 }, { before: "3" }, { newest: true }]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.transactions(r, options), `transactions ${JSON.stringify(options)}`);
    }
    for (const bad of ["tomorrow", NaN, Infinity, {}, true]) await fails(AllyError, "INVALID_INPUT", () => ally.checkCredits(bad), `checkCredits(${String(bad)})`);
    const gone = Proxy.revocable([], {});
    gone.revoke();
    await fails(AllyError, "INVALID_INPUT", () => ally.provisionBulk(r, gone.proxy), "provisionBulk of a revoked Proxy");
    await fails(AllyError, "INVALID_INPUT", () => ally.provisionBulk(r, new Proxy([{ cost: 1 }], { get() { throw new Error("trap"); } })), "provisionBulk through a throwing trap");
    // Values that only look like Dates: one that inherits from Date.prototype, and a Date
    // behind a Proxy whose traps throw (neither is a Date; neither trap nor getTime throws out).
    const trap = () => { throw new Error("trap"); };
    for (const [fake, what] of [[Object.create(Date.prototype), "an object inheriting from Date.prototype"], [new Proxy(new Date(), { getPrototypeOf: trap, get: trap }), "a Date behind throwing traps"]]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.checkCredits(fake), `checkCredits(${what})`);
      await fails(AllyError, "INVALID_INPUT", () => ally.commissions.process(fake, "2026-02-01"), `process(${what})`);
    }
    equal((await ally.checkCredits(new Date(Date.UTC(2026, 0, 5)))).checked >= 0, true, "a real Date is still read");
    for (const [event, listener] of [["lowcredit", () => {}], ["lowCredit", 5], [5, () => {}]]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.on(event, listener), `on(${String(event)})`);
    }
    await fails(AllyError, "INVALID_INPUT", () => ally.asReseller(5));
    equal(await ally.ledger(r), before, "nothing was written");
    equal((await ally.provision(r, 1)).balanceAfter, 999, "the instance still works");
  });

  t("wallets: a mail callback that throws or rejects leaves the provision standing and the mail pending", async () => {
    for (const mode of ["throw", "reject"]) {
      let calls = 0;
      const sent = [];
      const mail = {
        send(message) {
          calls += 1;
          if (calls <= 2) {
            if (mode === "throw") throw new Error("relay down");
            return Promise.reject(new Error("relay down"));
          }
          sent.push(message);
        },
      };
      const ally = new Ally({ mail, config: { lowCreditThreshold: 100, urls: { dashboard: "https://partners.example/dash" } } });
      const r = await ally.make().user(1).company("Mail & Co").email("ops@mail.example").create();
      await ally.addCredits(r, 150);
      const entry = await ally.provision(r, 100);
      equal(entry.balanceAfter, 50, `${mode}: the provision stands`);
      equal((await ally.outbox()).map((m) => m.status), ["pending"], `${mode}: pending`);
      equal((await ally.checkCredits()).failed, 1, `${mode}: a retry that fails again`);
      const third = await ally.checkCredits();
      equal([third.retried, sent.length], [1, 1], `${mode}: delivered once, later`);
      ok(sent[0].subject.includes("Mail & Co") && sent[0].text.includes("https://partners.example/dash"), `${mode}: the mail names company and dashboard`);
      equal((await ally.checkCredits()).retried, 0, `${mode}: not again`);
    }
  });

  t("resellers: commission rates and the parent hierarchy, cycles and depth refused", async () => {
    const ally = new Ally();
    const make = (user, name) => ally.make().user(user).company(name).create();
    const a = await make(1, "Super");
    const b = await make(2, "Sub");
    const c = await make(3, "Leaf");
    const d = await make(4, "Fourth");
    equal([a.commissionRate, a.parentId], [null, null], "new resellers have neither");
    equal((await ally.setCommissionRate(a, "0.10")).commissionRate, "0.1000", "rate as 4-decimal text");
    equal((await ally.setCommissionRate(a.id, 0.125)).commissionRate, "0.1250", "a number rate");
    equal((await ally.setCommissionRate(a, null)).commissionRate, null, "cleared");
    for (const bad of ["1.5", -0.1, "0.12345", "1e-2", NaN, Infinity, {}, true, undefined]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.setCommissionRate(a, bad), `rate ${String(bad)}`);
    }
    equal((await ally.setParent(b, a)).parentId, a.id, "b under a");
    equal((await ally.setParent(c.id, b.id)).parentId, b.id, "c under b");
    equal((await ally.children(a)).map((r) => r.id), [b.id], "children");
    await fails(AllyError, "INVALID_INPUT", () => ally.setParent(a, c), "a cycle");
    await fails(AllyError, "INVALID_INPUT", () => ally.setParent(a, a), "itself");
    await fails(AllyError, "INVALID_INPUT", () => ally.setParent(d, c), "a fourth level (default 3)");
    await fails(AllyError, "INVALID_INPUT", () => ally.setParent(a, d), "a whole chain pushed one level down");
    await fails(AllyError, "NOT_FOUND", () => ally.setParent(d, "rs_none"));
    await fails(AllyError, "NOT_FOUND", () => ally.setParent("rs_none", a));
    for (const bad of [5, undefined, {}, true]) await fails(AllyError, "INVALID_INPUT", () => ally.setParent(d, bad), `parent ${String(bad)}`);
    equal((await ally.setParent(b, null)).parentId, null, "back to the top");
    equal((await ally.setParent(a, c)).parentId, c.id, "now allowed: b → c → a");
    const deep = new Ally({ config: { hierarchyLevelsMax: 4 } });
    const chain = [];
    for (let i = 0; i < 4; i++) chain.push(await deep.make().user(i + 1).company(`L${i}`).create());
    for (let i = 1; i < 4; i++) await deep.setParent(chain[i], chain[i - 1]);
    equal((await deep.find(chain[3].id)).parentId, chain[2].id, "four levels when configured");
    for (const bad of [0, 10, 1.5, "3"]) {
      await fails(AllyError, "INVALID_CONFIG", () => new Ally({ config: { hierarchyLevelsMax: bad } }), `hierarchyLevelsMax ${bad}`);
    }
  });

  t("applications: submit, approve creates the reseller with its rate, reject needs a reason, nothing else moves", async () => {
    const ally = new Ally();
    const form = { name: "Ada Lovelace", email: "ada@abc.example", phone: "+44 20 7946 0958", businessName: "ABC Resellers", businessAddress: "1 Main St", businessType: "company", expectedCustomers: 40, termsAccepted: true };
    const app = await ally.applications.submit(form);
    equal([app.status, app.businessName, app.resellerId, app.decidedAt], ["pending", "ABC Resellers", null, null], "pending");
    ok(/^ap_[0-9a-z]{16}$/.test(app.id), "an application id");
    const { application, reseller } = await ally.applications.approve(app.id, { commissionRate: "0.15", notes: "strong pipeline", approvedBy: "admin-1" });
    equal([application.status, application.commissionRate, application.decidedBy, application.resellerId], ["approved", "0.1500", "admin-1", reseller.id], "approved");
    equal([reseller.companyName, reseller.email, reseller.commissionRate, reseller.status], ["ABC Resellers", "ada@abc.example", "0.1500", "active"], "the reseller");
    equal((await ally.find(reseller.id)).id, reseller.id, "stored");
    const e = await fails(AllyError, "STATUS_TRANSITION_DENIED", () => ally.applications.reject(app.id, { reason: "late", rejectedBy: "admin-2" }));
    equal([e.details.from, e.details.action], ["approved", "rejected"], "details");
    await fails(AllyError, "STATUS_TRANSITION_DENIED", () => ally.applications.approve(app.id, { commissionRate: 0.2, approvedBy: "admin-2" }));
    const other = await ally.applications.submit({ ...form, email: "bob@abc.example" });
    await fails(AllyError, "INVALID_INPUT", () => ally.applications.reject(other.id, { reason: "  ", rejectedBy: "admin-2" }), "a blank reason");
    const no = await ally.applications.reject(other.id, { reason: "outside our region", rejectedBy: "admin-2" });
    equal([no.status, no.rejectionReason], ["rejected", "outside our region"], "rejected");
    await fails(AllyError, "STATUS_TRANSITION_DENIED", () => ally.applications.approve(other.id, { commissionRate: "0.1", approvedBy: "admin-1" }));
    equal((await ally.applications.list({ status: "pending" })).length, 0, "none pending");
    equal((await ally.applications.list()).map((a) => a.status).sort(), ["approved", "rejected"], "all");
    equal((await ally.applications.get(other.id)).status, "rejected", "get");
    equal(await ally.applications.get("ap_none"), null, "unknown id");
    await fails(AllyError, "NOT_FOUND", () => ally.applications.approve("ap_none", { commissionRate: "0.1", approvedBy: "a" }));
    for (const [key, value] of [["termsAccepted", false], ["email", "nope"], ["phone", "call me"], ["businessType", "empire"], ["expectedCustomers", 1.5], ["expectedCustomers", -1], ["name", ""], ["extra", 1]]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.applications.submit({ ...form, [key]: value }), `${key}: ${String(value)}`);
    }
    await fails(AllyError, "INVALID_INPUT", () => ally.applications.submit(protoKeyed(JSON.stringify(form).replace("{", '{"__proto__":{},'))), "a __proto__ key");
    const third = await ally.applications.submit({ ...form, email: "cy@abc.example" });
    for (const options of [{ commissionRate: "1.5", approvedBy: "a" }, { commissionRate: "0.12345", approvedBy: "a" }, { commissionRate: NaN, approvedBy: "a" }, { commissionRate: "0.1" }, { commissionRate: "0.1", approvedBy: "a", extra: 1 }, null, 5]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.applications.approve(third.id, options), `approve ${JSON.stringify(options)}`);
    }
    for (const bad of [5, null, {}]) await fails(AllyError, "INVALID_INPUT", () => ally.applications.get(bad), `get(${String(bad)})`);
    await fails(AllyError, "INVALID_INPUT", () => ally.applications.list({ status: "lost" }));
    equal((await ally.applications.get(third.id)).status, "pending", "bad input changed nothing");
    equal((await ally.list()).length, 1, "one reseller, from the one approval");
  });

  t("clients: builder, refids, unique email, reseller checks, lookups and the status table", async () => {
    const ally = new Ally();
    const r = await ally.make().user(1).company("Elite").create();
    const c = await ally.clients.make().name("Acme Ltd").email("IT@acme.example").reseller(r).metadata({ plan: "fiber" }).create();
    equal([c.name, c.email, c.resellerId, c.status, c.metadata, c.version], ["Acme Ltd", "IT@acme.example", r.id, "pending", { plan: "fiber" }, 1], "a pending client");
    ok(/^CL-[0-9A-Z]{10}$/.test(c.refid), `refid ${c.refid}`);
    ok(/^cl_[0-9a-z]{16}$/.test(c.id), `id ${c.id}`);
    const e = await fails(AllyError, "DUPLICATE_EMAIL", () => ally.clients.make().name("Again").email("it@ACME.example").reseller(r).create());
    equal(e.details.email, "it@ACME.example", "details");
    // An email is unique among one reseller's clients (or the standalone ones), not network-wide.
    const walkIn = await ally.clients.make().name("Again, standalone").email("it@ACME.example").create();
    equal(walkIn.resellerId, null, "the same email, standalone");
    await fails(AllyError, "DUPLICATE_EMAIL", () => ally.clients.make().name("Twice").email("IT@acme.example").create(), "twice standalone");
    await fails(AllyError, "INVALID_RESELLER", () => ally.clients.make().name("X").reseller("rs_none").create());
    const standalone = await ally.clients.make().name("Walk-in").create();
    equal([standalone.resellerId, standalone.email], [null, null], "standalone, no email");
    equal((await ally.clients.findByRefid(c.refid)).id, c.id, "findByRefid");
    equal(await ally.clients.findByRefid("CL-NOPE"), null, "unknown refid");
    equal((await ally.clients.getByReseller(r)).map((x) => x.id), [c.id], "getByReseller");
    equal((await ally.clients.activate(c)).status, "active", "activate");
    equal((await ally.clients.suspend(c.id)).status, "suspended", "suspend");
    await fails(AllyError, "STATUS_TRANSITION_DENIED", () => ally.clients.suspend(c));
    equal((await ally.clients.deactivate(c)).status, "inactive", "deactivate");
    const denied = await fails(AllyError, "STATUS_TRANSITION_DENIED", () => ally.clients.deactivate(c));
    equal([denied.details.from, denied.details.action], ["inactive", "deactivated"], "details");
    equal((await ally.clients.activate(c)).version, 5, "reactivated");
    await fails(AllyError, "NOT_FOUND", () => ally.clients.activate("cl_none"));
    const b = ally.clients.make();
    for (const bad of ["", "  ", 5, null, "x".repeat(201)]) await fails(AllyError, "INVALID_INPUT", () => b.name(bad), `name ${String(bad)}`);
    for (const bad of ["", "nope", "a@b", 5]) await fails(AllyError, "INVALID_INPUT", () => b.email(bad), `email ${String(bad)}`);
    for (const bad of [5, null, {}]) await fails(AllyError, "INVALID_INPUT", () => b.reseller(bad), `reseller ${String(bad)}`);
    for (const bad of [[1], "x", null, { n: NaN }, protoKeyed('{"__proto__": 1}')]) await fails(AllyError, "INVALID_INPUT", () => b.metadata(bad), "metadata");
    await fails(AllyError, "INVALID_INPUT", () => b.create(), "a client needs a name");
    for (const bad of [5, null, {}]) await fails(AllyError, "INVALID_INPUT", () => ally.clients.activate(bad), `activate(${String(bad)})`);
    await ally.updateMetadata(r, "note", "x");
    const suspended = new Ally({ config: { clientRefidPrefix: "ACME-" } });
    const s2 = await suspended.make().user(1).company("S").create();
    ok((await suspended.clients.make().name("A").reseller(s2).create()).refid.startsWith("ACME-"), "a configured prefix");
    for (const bad of ["", "lower", "TOO-LONG-PREFIX", 5]) await fails(AllyError, "INVALID_CONFIG", () => new Ally({ config: { clientRefidPrefix: bad } }), `prefix ${String(bad)}`);
    equal((await ally.clients.getByReseller(r)).length, 1, "bad input wrote nothing");
  });

  t("permissions: a reseller manages only its own clients, only while active", async () => {
    const ally = new Ally();
    const mine = await ally.make().user(1).company("Mine").create();
    const other = await ally.make().user(2).company("Other").create();
    const own = await ally.clients.make().name("Own").reseller(mine).create();
    const theirs = await ally.clients.make().name("Theirs").reseller(other).create();
    const free = await ally.clients.make().name("Free").create();
    equal(
      [await ally.canManageChildAccount(mine, own), await ally.canManageChildAccount(mine, theirs), await ally.canManageChildAccount(mine.id, free.id)],
      [true, false, false],
      "manage",
    );
    equal([await ally.canAssignChildAccount(mine, free), await ally.canAssignChildAccount(mine, theirs)], [true, false], "assign");
    equal(await ally.canViewResellerDashboard(mine), true, "dashboard");
    // A stale record passed in does not decide: the stored one does.
    await ally.clients.deactivate(free);
    equal(await ally.canAssignChildAccount(mine, free), false, "an inactive client cannot be assigned");
    await fails(AllyError, "NOT_FOUND", () => ally.canManageChildAccount("rs_none", own));
    await fails(AllyError, "NOT_FOUND", () => ally.canManageChildAccount(mine, "cl_none"));
    for (const bad of [5, null, {}]) await fails(AllyError, "INVALID_INPUT", () => ally.canManageChildAccount(mine, bad), `client ${String(bad)}`);
  });

  t("payments and the reference reports: 5000.00 over 25 payments at 15 % is 750.00", async () => {
    const ally = new Ally();
    const abc = await ally.make().user(1).company("ABC Resellers").create();
    await ally.setCommissionRate(abc, "0.15");
    const clients = [];
    for (let i = 0; i < 10; i++) clients.push(await ally.clients.make().name(`Client ${i}`).reseller(abc).create());
    for (let i = 0; i < 25; i++) {
      await ally.payments.record({ clientId: clients[i % 10].id, amount: "200.00", at: new Date(Date.UTC(2026, 0, 1 + i, 10)) });
    }
    // Outside the period, not completed, or another reseller's: none of these count.
    await ally.payments.record({ clientId: clients[0].id, amount: "999.00", at: "2026-02-01T00:00:00Z" });
    await ally.payments.record({ clientId: clients[1].id, amount: "999.00", at: "2026-01-15", status: "pending" });
    const other = await ally.make().user(2).company("Other").create();
    const stranger = await ally.clients.make().name("Stranger").reseller(other).create();
    const paid = await ally.payments.record({ id: "pay-1", clientId: stranger.id, amount: 50, at: "2026-01-10", description: "fiber" });
    equal([paid.id, paid.resellerId, paid.amount, paid.status, paid.kind], ["pay-1", other.id, "50.00", "completed", "payment"], "a payment record");
    const revenue = await ally.calculateChildAccountsRevenue(abc, "2026-01-01", "2026-02-01");
    equal(
      [revenue.totalRevenue, revenue.totalPayments, revenue.commission, revenue.commissionRate, revenue.childCount],
      ["5000.00", 25, "750.00", "0.1500", 10],
      "the reference example",
    );
    equal(revenue.breakdown.find((b) => b.clientId === clients[0].id), { clientId: clients[0].id, commission: "90.00", name: "Client 0", payments: 3, refid: clients[0].refid, revenue: "600.00" }, "breakdown");
    const report = await ally.commissionReport(abc.id, "2026-01-01", "2026-02-01");
    equal(report.summary, {
      byRule: [{ amount: "750.00", base: "5000.00", level: 0, lines: 25, rate: "0.1500", rule: "percentage" }],
      capped: "0.00", clawbacks: "0.00", commissionRate: "15%", direct: "750.00", overrides: "0.00", rule: "percentage",
      totalChildAccounts: 10, totalCommission: "750.00", totalPayments: 25, totalRevenue: "5000.00",
    }, "report summary");
    equal([report.resellerName, report.reportPeriod], ["ABC Resellers", { end: "2026-02-01T00:00:00.000Z", start: "2026-01-01T00:00:00.000Z" }], "report head");
    const all = await ally.allResellersCommission("2026-01-01", "2026-02-01");
    equal(all.map((r) => [r.resellerName, r.totalCommission]), [["ABC Resellers", "750.00"], ["Other", "0.00"]], "all resellers (Other has no rate)");
    // A refund claws back in the period it happens.
    await ally.payments.record({ clientId: clients[2].id, amount: "200.00", at: "2026-02-03", kind: "refund", reverses: (await ally.payments.record({ clientId: clients[2].id, amount: "200.00", at: "2026-02-02" })).id });
    const february = await ally.calculateChildAccountsRevenue(abc, "2026-02-01", "2026-03-01");
    // 999.00 on February 1 earns 149.85; the 200.00 payment and its refund net to zero.
    equal([february.totalRevenue, february.commission], ["1199.00", "149.85"], "a refunded payment nets to zero");
    await fails(AllyError, "NOT_FOUND", () => ally.payments.record({ clientId: "cl_none", amount: "1.00", at: "2026-01-01" }));
    await fails(AllyError, "ALREADY_EXISTS", () => ally.payments.record({ id: "pay-1", clientId: stranger.id, amount: 1, at: "2026-01-01" }));
    await fails(AllyError, "INVALID_INPUT", () => ally.payments.record({ clientId: stranger.id, amount: "60.00", at: "2026-01-11", kind: "refund", reverses: "pay-1" }), "reverses more than paid");
    for (const bad of [{ amount: "1.001" }, { amount: NaN }, { amount: "0.00" }, { amount: -5 }, { at: "soon" }, { at: new Date(NaN) }, { status: "done" }, { kind: "gift" }, { extra: 1 }, { reverses: "pay-1" }]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.payments.record({ clientId: stranger.id, amount: "1.00", at: "2026-01-01", ...bad }), `payment ${JSON.stringify(bad)}`);
    }
    for (const [start, end] of [["2026-02-01", "2026-01-01"], ["nope", "2026-01-01"], [null, "2026-01-01"]]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.calculateChildAccountsRevenue(abc, start, end), `period ${start}..${end}`);
    }
    await fails(AllyError, "NOT_FOUND", () => ally.commissionReport("rs_none", "2026-01-01", "2026-02-01"));
  });

  t("commission rules of other platforms: step-down, first payments, per-payment bounds, graduated tiers, chronological caps, band fees", async () => {
    const { commission } = lib;
    const hierarchy = { resellers: [{ id: "r", commissionRate: "0.01" }], customers: [{ id: "c", resellerId: "r", since: "2026-01-01" }] };
    const monthly = ["2026-01-15", "2026-03-31", "2026-04-01", "2026-12-01"].map((at, i) => ({ id: `p${i}`, customerId: "c", amount: "100.00", at }));
    const year = { start: "2026-01-01", end: "2027-01-01" };
    const steps = commission({ overrides: [], stepDown: [{ months: 3, rate: "0.40" }, { months: null, rate: "0.20" }] }, monthly, hierarchy, year);
    equal(steps.lines.map((l) => [l.paymentId, l.rule, l.rate, l.amount]), [
      ["p0", "stepDown", "0.4000", "40.00"], ["p1", "stepDown", "0.4000", "40.00"], ["p2", "stepDown", "0.2000", "20.00"], ["p3", "stepDown", "0.2000", "20.00"],
    ], "FirstPromoter: 40 % for 3 months, then 20 %");
    equal(steps.resellers[0].rate, "0.3000", "the effective rate");
    const first = commission({ overrides: [], recurringPayments: 2 }, monthly, hierarchy, year);
    equal(first.lines.map((l) => l.paymentId), ["p0", "p1"], "Tapfiliate: a customer's first 2 payments");
    const sized = ["20.00", "300.00", "1000.00"].map((amount, i) => ({ id: `s${i}`, customerId: "c", amount, at: "2026-01-10" }));
    const bounded = commission({ overrides: [], flatFee: "0.50", perPaymentMinimum: "1.00", perPaymentMaximum: "5.00" }, sized, hierarchy, year);
    equal(bounded.lines.map((l) => [l.paymentId, l.rule, l.amount]), [
      ["s0", "percentage", "0.50"], ["s0", "flatFee", "0.50"], ["s1", "percentage", "3.00"], ["s1", "flatFee", "0.50"], ["s2", "percentage", "4.50"], ["s2", "flatFee", "0.50"],
    ], "Lago: 1 % + 0.50 a transaction, at least 1.00 and at most 5.00");
    const thirteen = { resellers: [{ id: "r", commissionRate: "0" }], customers: Array.from({ length: 13 }, (_, i) => ({ id: `c${i}`, resellerId: "r", since: Date.UTC(2025, 0, 1 + i) })) };
    const each = thirteen.customers.map((c, i) => ({ id: `g${i}`, customerId: c.id, amount: "100.00", at: "2026-01-10" }));
    const graduated = commission({ overrides: [], base: "childCount", childCountMode: "graduated" }, each, thirteen, year);
    equal([graduated.resellers[0].direct, graduated.lines[9].rate, graduated.lines[10].rate], ["136.00", "0.1000", "0.1200"], "Refvenue: customers 1-10 at 10 %, then 12 %");
    const capped = commission({ overrides: [], capPerPeriod: "1000.00", capAttribution: "chronological" }, ["2026-01-04", "2026-01-02", "2026-01-03", "2026-01-05"].map((at, i) => ({ id: `k${i}`, customerId: "c", amount: "800.00", at })), { ...hierarchy, resellers: [{ id: "r", commissionRate: "0.50" }] }, year);
    equal(capped.lines.map((l) => [l.paymentId, l.amount]), [["k0", "200.00"], ["k1", "400.00"], ["k2", "400.00"], ["k3", "0.00"]], "Affonso: in payment order until the cap");

    // The engine form: band fees from the configured plan, recorded and reconciled.
    const ally = new Ally({ config: { commissionPlan: { base: "revenue", bandMode: "graduated", overrides: [], revenueBands: [{ upTo: "1000.00", rate: "0.01", flatFee: "200.00" }, { upTo: null, rate: "0.005", flatFee: "300.00" }] } } });
    const r = await ally.make().user(1).company("R").create();
    const client = await ally.clients.make().name("C").reseller(r).create();
    await ally.payments.record({ id: "b1", clientId: client.id, amount: "500.00", at: "2026-01-10" });
    await ally.payments.record({ id: "b2", clientId: client.id, amount: "1000.00", at: "2026-01-11" });
    const run = await ally.commissions.process("2026-01-01", "2026-02-01");
    equal([run.total, run.lines], ["512.50", 4], "Lago: 1 % + 200.00, then 0.5 % + 300.00");
    equal((await ally.commissions.lines({ payment: "b2" })).map((l) => [l.id, l.amount]), [["cm_b2_0_bandFee", "333.33"], ["cm_b2_0_revenueGraduated", "8.33"]], "a band fee line");
    equal((await ally.calculateChildAccountsRevenue(r, "2026-01-01", "2026-02-01")).commission, "512.50", "the report agrees");
    for (const plan of [
      { base: "childCount", stepDown: [{ months: null, rate: "0.2" }] }, { stepDown: [{ months: 3, rate: "0.2" }] }, { stepDown: [{ months: null, rate: "0.2", extra: 1 }] },
      { capAttribution: "random" }, { childCountMode: 5 }, { recurringPayments: 0 }, { recurringPayments: 1.5 }, { perPaymentMinimum: "5.00", perPaymentMaximum: "1.00" },
      { perPaymentMinimum: "-1.00" }, { base: "revenue", revenueBands: [{ upTo: null, rate: "0.1", flatFee: "1.001" }] },
    ]) {
      await fails(AllyError, "INVALID_CONFIG", () => new Ally({ config: { commissionPlan: plan } }), `commissionPlan ${JSON.stringify(plan)}`);
      await fails(AllyError, "INVALID_INPUT", () => commission(plan, monthly, hierarchy, year), `plan ${JSON.stringify(plan)}`);
    }
  });

  t("the reports follow the configured plan: tiers, caps and overrides, as a run records them", async () => {
    // The reference's child-count tiers: 13 customers reach the 12 % tier.
    const ally = new Ally({ config: { commissionPlan: { base: "childCount", capPerPeriod: "140.00" } } });
    const top = await ally.make().user(1).company("Top").create();
    const abc = await ally.make().user(2).company("ABC").create();
    await ally.setCommissionRate(abc, "0.50");
    await ally.setParent(abc, top);
    for (let i = 0; i < 13; i++) {
      const client = await ally.clients.make().name(`Client ${i}`).reseller(abc).create();
      if (i < 12) await ally.payments.record({ id: `p${i}`, clientId: client.id, amount: "100.00", at: `2026-01-${String(10 + i).padStart(2, "0")}` });
    }
    const run = await ally.commissions.process("2026-01-01", "2026-02-01");
    const recorded = async (reseller) => (await ally.commissions.lines({ reseller })).reduce((sum, l) => sum + Math.round(Number(l.amount) * 100), 0) / 100;
    // 12 % of 1 200.00 is 144.00, capped at 140.00; the parent earns 5 % of 1 200.00.
    equal([run.total, await recorded(abc), await recorded(top)], ["200.00", 140, 60], "the run");
    const revenue = await ally.calculateChildAccountsRevenue(abc, "2026-01-01", "2026-02-01");
    equal(
      [revenue.totalRevenue, revenue.commission, revenue.commissionRate, revenue.childCount, revenue.rule, revenue.direct, revenue.capped, revenue.overrides],
      ["1200.00", "140.00", "0.1200", 13, "childCountTier", "140.00", "4.00", "0.00"],
      "calculateChildAccountsRevenue pays what the run records",
    );
    equal(revenue.breakdown.reduce((sum, b) => sum + Math.round(Number(b.commission) * 100), 0), 14000, "the breakdown adds up to it");
    const report = await ally.commissionReport(top, "2026-01-01", "2026-02-01");
    equal(
      [report.summary.totalCommission, report.summary.overrides, report.summary.direct, report.summary.totalChildAccounts, report.summary.byRule],
      ["60.00", "60.00", "0.00", 0, [{ amount: "60.00", base: "1200.00", level: 1, lines: 12, rate: "0.0500", rule: "override" }]],
      "the parent's report names its overrides",
    );
    const all = await ally.allResellersCommission("2026-01-01", "2026-02-01");
    equal(all.map((r) => [r.resellerName, r.totalCommission, r.commissionRate]).sort(), [["ABC", "140.00", "12%"], ["Top", "60.00", "10%"]], "allResellersCommission");
    equal((await ally.reconcile("2026-01-01", "2026-02-01")).discrepancies, [], "and the run reconciles");
  });

  /** An engine over a host storage with a clock the test moves, a top reseller (10 %) over a
   * sub-reseller (15 %) and one client; the plan holds lines 30 days and pays at least 50.00. */
  const payoutNetwork = async () => {
    const clock = { now: Date.UTC(2026, 0, 1, 12) };
    const host = hostStorage({ async: true });
    const ally = new Ally({ storage: host, clock: () => new Date(clock.now), config: { commissionPlan: { holdDays: 30, minimumPayout: "50.00" } } });
    const top = await ally.make().user(1).company("Top").create();
    const sub = await ally.make().user(2).company("Sub").create();
    await ally.setCommissionRate(top, "0.10");
    await ally.setCommissionRate(sub, "0.15");
    await ally.setParent(sub, top);
    const client = await ally.clients.make().name("Client").reseller(sub).create();
    const pay = (id, amount, at, extra = {}) => ally.payments.record({ id, clientId: client.id, amount, at, ...extra });
    return { ally, host, clock, top, sub, pay };
  };
  const byReseller = (rows, pick) => rows.map(pick).sort((a, b) => (a[0] < b[0] ? -1 : 1));

  t("commissions: a recorded run holds, reverses, repeats safely and reconciles", async () => {
    const { ally, clock, top, sub, pay } = await payoutNetwork();
    await pay("p1", "1000.00", "2026-01-10");
    await pay("p2", "200.00", "2026-01-20");
    await pay("r2", "200.00", "2026-01-25", { kind: "refund", reverses: "p2" });
    clock.now = Date.UTC(2026, 1, 1, 12);
    const phases = [];
    const run = await ally.commissions.process("2026-01-01", "2026-02-01", { onProgress: (p) => phases.push(`${p.phase} ${p.done}/${p.total}`) });
    equal([run.payments, run.lines, run.recorded, run.reversed, run.approved, run.total, run.asOf], [3, 6, 6, 4, 0, "200.00", "2026-02-01T12:00:00.000Z"], "the run");
    equal(phases, ["load 3/3", "record 0/3", "record 3/3", "approve 0/0"], "progress: the page of the period, then the one reseller");
    const p1 = await ally.commissions.lines({ payment: "p1" });
    equal(p1.map((l) => [l.id, l.resellerId, l.level, l.rule, l.rate, l.base, l.amount, l.status, l.payableAt]), [
      ["cm_p1_0_percentage", sub.id, 0, "percentage", "0.1500", "1000.00", "150.00", "pending", "2026-02-09T00:00:00.000Z"],
      ["cm_p1_1_override", top.id, 1, "override", "0.0500", "1000.00", "50.00", "pending", "2026-02-09T00:00:00.000Z"],
    ], "each line explains itself");
    equal((await ally.commissions.lines({ status: "reversed" })).map((l) => [l.id, l.amount, l.reverses]), [
      ["cm_p2_0_percentage", "30.00", null], ["cm_p2_1_override", "10.00", null],
      ["cm_r2_0_percentage", "-30.00", "cm_p2_0_percentage"], ["cm_r2_1_override", "-10.00", "cm_p2_1_override"],
    ], "a full refund before payment reverses both lines");
    const balance = await ally.commissions.balance(sub);
    equal([balance.pending, balance.approved, balance.payable, balance.withheld], ["150.00", "0.00", "0.00", "nothingPayable"], "held");
    const again = await ally.commissions.process(new Date(Date.UTC(2026, 0, 1)), "2026-02-01");
    equal([again.lines, again.recorded, again.reversed], [6, 0, 0], "a repeat records nothing");
    const clean = await ally.reconcile("2026-01-01", "2026-02-01");
    equal([clean.expectedLines, clean.recordedLines, clean.matched, clean.difference, clean.discrepancies], [6, 6, 6, "0.00", []], "reconciled");
    await pay("p3", "100.00", "2026-01-15");
    const late = await ally.reconcile("2026-01-01", "2026-02-01");
    equal(late.discrepancies.map((d) => [d.kind, d.lineId, d.expected.amount, d.recorded]), [["missing", "cm_p3_0_percentage", "15.00", null], ["missing", "cm_p3_1_override", "5.00", null]], "a payment after the run");
    equal([late.expectedTotal, late.recordedTotal, late.difference], ["220.00", "200.00", "-20.00"], "totals");
    await ally.setCommissionRate(sub, "0.20");
    const changed = await ally.reconcile("2026-01-01", "2026-02-01");
    equal(changed.discrepancies.filter((d) => d.kind === "changed").map((d) => [d.lineId, d.fields, d.expected.amount, d.recorded.amount]), [
      ["cm_p1_0_percentage", ["amount", "rate"], "200.00", "150.00"],
      ["cm_p2_0_percentage", ["amount", "rate"], "40.00", "30.00"],
      ["cm_r2_0_percentage", ["amount", "rate"], "-40.00", "-30.00"],
    ], "a rate changed since: every line of the reseller's payments differs");
    const rerun = await ally.commissions.process("2026-01-01", "2026-02-01");
    equal([rerun.lines, rerun.recorded, rerun.adjusted, rerun.total], [8, 2, 3, "275.00"], "the period run again records the late payment and adjusts what moved");
    const adjusted = await ally.commissions.lines({ payment: "p1" });
    equal(adjusted.map((l) => [l.id, l.amount, l.base, l.rate, l.adjusts, l.reason, l.status]), [
      ["cm_p1_0_percentage", "150.00", "1000.00", "0.1500", null, null, "pending"],
      ["cm_p1_0_percentage_adj1", "50.00", "0.00", "0.2000", "cm_p1_0_percentage", "rate", "pending"],
      ["cm_p1_1_override", "50.00", "1000.00", "0.0500", null, null, "pending"],
    ], "an adjustment names the line it adjusts and why");
    const repaired = await ally.reconcile("2026-01-01", "2026-02-01");
    equal([repaired.matched, repaired.recordedLines, repaired.difference, repaired.discrepancies], [8, 11, "0.00", []], "reconciled again");
    const still = await ally.commissions.process("2026-01-01", "2026-02-01");
    equal([still.recorded, still.adjusted], [0, 0], "a repeat adjusts nothing");
  });

  t("commissions: payout batches pay above the minimum, net advances and clawbacks, and wait out a negative balance", async () => {
    const { ally, host, clock, top, sub, pay } = await payoutNetwork();
    await pay("p1", "1000.00", "2026-01-10");
    clock.now = Date.UTC(2026, 1, 1, 12);
    await ally.commissions.process("2026-01-01", "2026-02-01");
    equal((await ally.commissions.createPayoutBatch()).payouts, [], "everything is still held");
    clock.now = Date.UTC(2026, 1, 10, 12);
    const feb = await ally.commissions.createPayoutBatch({ description: "February payout" });
    equal([feb.status, feb.total, feb.currency, feb.minimumPayout, feb.description, feb.withheld], ["paid", "200.00", "USD", "50.00", "February payout", []], "the batch");
    equal(byReseller(feb.payouts, (p) => [p.resellerId, p.amount, p.lineIds.length, p.paymentId]), byReseller([[sub.id, "150.00", 1, `cp_${feb.id}_${sub.id}`], [top.id, "50.00", 1, `cp_${feb.id}_${top.id}`]], (x) => x), "one payment per reseller");
    equal((await ally.commissions.lines({ batch: feb.id })).map((l) => l.status), ["paid", "paid"], "its lines are paid");
    equal((await ally.commissions.createPayoutBatch()).payouts, [], "nothing is paid twice");
    clock.now = Date.UTC(2026, 1, 11, 12);
    const advance = await ally.payCommission(sub, 100, "Commission for January 2026");
    equal([advance.amount, advance.paymentMethod, advance.status, advance.description, advance.batchId], ["100.00", "commission", "completed", "Commission for January 2026", null], "payCommission");
    await pay("r1", "500.00", "2026-02-12", { kind: "refund", reverses: "p1" });
    clock.now = Date.UTC(2026, 2, 1, 12);
    await ally.commissions.process("2026-02-01", "2026-03-01");
    const owed = await ally.commissions.balance(sub.id);
    equal([owed.approved, owed.advances, owed.payable, owed.withheld], ["-75.00", "100.00", "-175.00", "negativeBalance"], "a clawback after payment and an advance");
    const blocked = await ally.commissions.createPayoutBatch();
    equal([blocked.payouts, byReseller(blocked.withheld, (w) => [w.resellerId, w.payable, w.reason])], [[], byReseller([[sub.id, "-175.00", "negativeBalance"], [top.id, "-25.00", "negativeBalance"]], (x) => x)], "withheld");
    await pay("p4", "2000.00", "2026-03-02");
    clock.now = Date.UTC(2026, 3, 10, 12);
    await ally.commissions.process("2026-03-01", "2026-04-01");
    const april = await ally.commissions.createPayoutBatch();
    equal(byReseller(april.payouts, (p) => [p.resellerId, p.earned, p.clawbacks, p.advances, p.amount]), byReseller([[sub.id, "300.00", "-75.00", "100.00", "125.00"], [top.id, "100.00", "-25.00", "0.00", "75.00"]], (x) => x), "netted");
    equal((await ally.commissions.payments(sub)).map((p) => [p.amount, p.batchId === null, p.settledBy]), [["150.00", false, null], ["100.00", true, april.id], ["125.00", false, null]], "paid to sub");
    equal((await ally.commissions.batches()).length, 5, "every batch is kept");
    equal((await ally.commissions.batch(feb.id)).total, "200.00", "batch by id");
    // A storage that fails mid-batch: the batch is finished by the next call, and pays once.
    await pay("p5", "1000.00", "2026-04-02");
    clock.now = Date.UTC(2026, 4, 10, 12);
    await ally.commissions.process("2026-04-01", "2026-05-01");
    host.failNext("put", "throw");
    await fails(AllyError, "STORAGE_FAILED", () => ally.commissions.createPayoutBatch());
    host.failNext("put", null);
    const may = await ally.commissions.createPayoutBatch();
    equal(byReseller(may.payouts, (p) => [p.resellerId, p.amount]), byReseller([[sub.id, "150.00"], [top.id, "50.00"]], (x) => x), "paid after the failure");
    equal(host.dump("commission_payments").length, 7, "no payment twice");
  });

  t("commissions: bad input at every function is refused and changes nothing", async () => {
    const { ally, host, clock, sub, pay } = await payoutNetwork();
    await pay("p1", "1000.00", "2026-01-10");
    clock.now = Date.UTC(2026, 1, 20, 12);
    const stored = () => ["commissions", "commission_payments", "payout_batches"].map((c) => host.dump(c).length);
    const before = stored();
    const bad = (what, fn, code = "INVALID_INPUT") => fails(AllyError, code, fn, what);
    for (const amount of [NaN, Infinity, -Infinity, "1.001", "-1.00", 0, "0.00", "1e3", "1_000", " 5", 1e30, null, undefined, {}, [], true]) {
      await bad(`payCommission ${String(amount)}`, () => ally.payCommission(sub, amount, "x"));
    }
    for (const [reseller, code] of [[5, "INVALID_INPUT"], [null, "INVALID_INPUT"], [{}, "INVALID_INPUT"], ["rs_none", "NOT_FOUND"]]) {
      await bad(`payCommission reseller ${JSON.stringify(reseller)}`, () => ally.payCommission(reseller, "1.00"), code);
      await bad(`balance ${JSON.stringify(reseller)}`, () => ally.commissions.balance(reseller), code);
      await bad(`payments ${JSON.stringify(reseller)}`, () => ally.commissions.payments(reseller), code);
    }
    for (const description of [5, {}, "x".repeat(1001), "bell\u0007"]) {
      await bad(`description ${String(description).slice(0, 10)}`, () => ally.payCommission(sub, "1.00", description));
      await bad(`batch description ${String(description).slice(0, 10)}`, () => ally.commissions.createPayoutBatch({ description }));
    }
    for (const [start, end] of [["2026-02-01", "2026-01-01"], ["soon", "2026-01-01"], [NaN, 5], [null, "2026-01-01"], [new Date(NaN), "2026-01-01"]]) {
      await bad(`process ${start}..${end}`, () => ally.commissions.process(start, end));
      await bad(`reconcile ${start}..${end}`, () => ally.reconcile(start, end));
    }
    for (const options of [5, "x", { extra: 1 }, { onProgress: 5 }, protoKeyed('{"__proto__": {"onProgress": null}}')]) {
      await bad(`process options ${JSON.stringify(options)}`, () => ally.commissions.process("2026-01-01", "2026-02-01", options));
    }
    for (const filter of [5, { status: "lost" }, { extra: 1 }, { reseller: 5 }, protoKeyed('{"__proto__": {}}')]) {
      await bad(`lines ${JSON.stringify(filter)}`, () => ally.commissions.lines(filter));
    }
    for (const options of [5, { colour: "red" }, protoKeyed('{"__proto__": {}}')]) {
      await bad(`createPayoutBatch ${JSON.stringify(options)}`, () => ally.commissions.createPayoutBatch(options));
    }
    await bad("batch(5)", () => ally.commissions.batch(5));
    await bad("batch unknown", () => ally.commissions.batch("pb_none"), "NOT_FOUND");
    const thrown = await bad("onProgress throws", () => ally.commissions.process("2026-01-01", "2026-02-01", { onProgress() { throw new Error("stop") } }));
    ok(thrown.message.includes("stop"), "the thrown message is kept");
    equal(stored(), before, "nothing was written");
    for (const plan of [
      { holdDays: -1 }, { minimumPayout: "1.001" }, { overrides: ["2"] }, { extra: 1 }, 5,
      { overrides: ["0.60", "0.50"] },
      { base: "childCount", childCountTiers: [{ min: 0, rate: "0.95" }], overrides: ["0.05", "0.01"] },
    ]) {
      await fails(AllyError, "INVALID_CONFIG", () => new Ally({ config: { commissionPlan: plan } }), `commissionPlan ${JSON.stringify(plan)}`);
    }
    const overpay = await bad("a rate that with the override pays more than the payment", () => ally.setCommissionRate(sub, "0.96"));
    ok(overpay.message.includes("1.0100"), overpay.message);
    equal((await ally.setCommissionRate(sub, "0.95")).commissionRate, "0.9500", "all of it, at most");
    await ally.setCommissionRate(sub, "0.15");
    const run = await ally.commissions.process("2026-01-01", "2026-02-01");
    equal([run.recorded, run.approved, run.total], [2, 0, "200.00"], "still works");
  });

  const HIERARCHY = {
    resellers: [
      { id: "super", commissionRate: "0.10" },
      { id: "sub", parentId: "super", commissionRate: 0.12 },
      { id: "abc", parentId: "sub", commissionRate: "0.15" },
    ],
    customers: Array.from({ length: 10 }, (_, i) => ({ id: `c${i}`, resellerId: "abc", since: "2025-12-01T00:00:00Z" })),
  };
  const JANUARY = { start: "2026-01-01", end: "2026-02-01" };

  t("commission: the reference example, overrides, refunds and explanations", () => {
    const { commission } = lib;
    const payments = Array.from({ length: 25 }, (_, i) => ({ id: `p${i}`, customerId: `c${i % 10}`, amount: "200.00", at: `2026-01-${String(1 + i).padStart(2, "0")}T10:00:00Z` }));
    const run = commission({ overrides: [] }, payments, HIERARCHY, JANUARY);
    const abc = run.resellers[2];
    equal([abc.resellerId, abc.revenue, abc.payments, abc.rate, abc.direct, abc.childCount], ["abc", "5000.00", 25, "0.1500", "750.00", 10], "5000.00 at 15 % is 750.00");
    equal(run.lines[0], { amount: "30.00", base: "200.00", clawback: false, level: 0, payableAt: "2026-01-01T10:00:00.000Z", paymentId: "p0", rate: "0.1500", resellerId: "abc", rule: "percentage" }, "an explained line");
    const split = commission({ overrides: ["0.05", "0.02"] }, [{ id: "x", customerId: "c0", amount: "33.33", at: "2026-01-05T00:00:00Z" }], HIERARCHY, JANUARY);
    equal(split.lines.map((l) => [l.resellerId, l.level, l.rule, l.amount]), [["abc", 0, "percentage", "5.00"], ["sub", 1, "override", "1.66"], ["super", 2, "override", "0.67"]], "levels sum to 7.33");
    const refunded = commission({}, [
      { id: "p", customerId: "c1", amount: "100.00", at: "2026-01-02T00:00:00Z" },
      { id: "r", customerId: "c1", amount: "100.00", at: "2026-01-03T00:00:00Z", kind: "refund", reverses: "p" },
    ], HIERARCHY, JANUARY);
    equal(refunded.resellers.map((r) => r.total), ["0.00", "0.00", "0.00"], "a full refund nets to zero");
    ok(refunded.lines.filter((l) => l.paymentId === "r").every((l) => l.clawback && l.amount.startsWith("-")), "clawback lines");
    const held = commission({ holdDays: 30, minimumPayout: "20.00" }, [{ customerId: "c2", amount: "100.00", at: "2026-01-20T00:00:00Z" }], HIERARCHY, { ...JANUARY, asOf: "2026-02-01" });
    equal([held.resellers[2].pending, held.resellers[2].approved, held.resellers[2].payoutEligible], ["15.00", "0.00", false], "held");
    const tiers = commission({ base: "childCount", overrides: [] }, [{ customerId: "c3", amount: "100.00", at: "2026-01-04" }], HIERARCHY, JANUARY);
    equal([tiers.resellers[2].rate, tiers.lines[0].rule, tiers.lines[0].amount], ["0.1200", "childCountTier", "12.00"], "10 children: 12 %");
    const graduated = commission(
      { base: "revenue", bandMode: "graduated", overrides: [], revenueBands: [{ upTo: "1000.00", rate: "0.05" }, { upTo: "5000.00", rate: "0.10" }, { upTo: null, rate: "0.15" }] },
      [0, 1, 2].map((i) => ({ customerId: `c${i}`, amount: "2000.00", at: `2026-01-1${i}` })),
      HIERARCHY,
      JANUARY,
    );
    equal([graduated.resellers[2].direct, graduated.resellers[2].rate], ["600.00", "0.1000"], "graduated bands");
    equal(commission({}, [{ customerId: "c0", amount: "1.00", at: "2026-02-01" }], HIERARCHY, JANUARY).lineCount, 0, "the period is half-open");
  });

  t("commission: payment and customer columns give the same totals as objects", () => {
    const { commission } = lib;
    const objects = [];
    const n = 500;
    const columns = { customer: new Uint32Array(n), amountMinor: new Float64Array(n), at: new Float64Array(n), kind: new Uint8Array(n), status: new Uint8Array(n) };
    const start = Date.UTC(2026, 0, 1);
    for (let i = 0; i < n; i++) {
      const refund = i % 23 === 5;
      const status = i % 31 === 0 ? 1 : 0;
      columns.customer[i] = i % 10;
      columns.amountMinor[i] = 100 + i * 7;
      columns.at[i] = start + i * 3_600_000;
      columns.kind[i] = refund ? 1 : 0;
      columns.status[i] = status;
      objects.push({ customerId: `c${i % 10}`, amount: ((100 + i * 7) / 100).toFixed(2), at: start + i * 3_600_000, ...(refund ? { kind: "refund" } : {}), ...(status ? { status: "pending" } : {}) });
    }
    const customers = { reseller: new Uint32Array(10).fill(2), since: new Float64Array(10).fill(Date.UTC(2025, 11, 1)) };
    const plan = { overrides: ["0.05", "0.02"], holdDays: 3 };
    const a = commission(plan, objects, HIERARCHY, JANUARY);
    const b = commission(plan, columns, { ...HIERARCHY, customers }, JANUARY);
    equal(b.resellers, a.resellers, "the same totals");
    ok(b.lines.amountMinor instanceof Float64Array && b.lines.amountMinor.length === a.lineCount, "lines as columns");
    equal(b.lines.rules[b.lines.rule[0]], a.lines[0].rule, "rule names");
    equal(commission(plan, columns, { ...HIERARCHY, customers }, { ...JANUARY, lines: "none" }).lines, undefined, "no lines");
  });

  t("commission: bad input at every argument is INVALID_INPUT", async () => {
    const { commission } = lib;
    const pay = [{ customerId: "c0", amount: "10.00", at: "2026-01-02" }];
    const bad = (what, fn) => fails(AllyError, "INVALID_INPUT", fn, what);
    for (const plan of [5, "x", { base: "magic" }, { overrides: ["1.5"] }, { overrides: Array(9).fill("0.01") }, { flatFee: "-1.00" }, { flatFee: "1.001" }, { holdDays: -1 }, { holdDays: 1.5 }, { recurringMonths: NaN }, { rounding: "sideways" }, { extra: 1 }, protoKeyed('{"__proto__": {"base": "ownRate"}}'), { base: "revenue" }, { base: "revenue", revenueBands: [{ upTo: "5.00", rate: "0.1" }] }, { base: "childCount", childCountTiers: [{ min: 10, rate: "0.1" }] }]) {
      await bad(`plan ${JSON.stringify(plan)}`, () => commission(plan, pay, HIERARCHY, JANUARY));
    }
    for (const amount of ["1e3", "10.001", NaN, Infinity, -1, "0.00", null, "1_000"]) {
      await bad(`amount ${String(amount)}`, () => commission({}, [{ ...pay[0], amount }], HIERARCHY, JANUARY));
    }
    for (const payment of [{ ...pay[0], customerId: "nobody" }, { ...pay[0], at: "yesterday" }, { ...pay[0], kind: "gift" }, { ...pay[0], status: "done" }, { ...pay[0], extra: 1 }, { ...pay[0], reverses: "none" }, protoKeyed('{"customerId": "c0", "amount": "1.00", "at": "2026-01-02", "__proto__": {}}')]) {
      await bad(`payment ${JSON.stringify(payment)}`, () => commission({}, [payment], HIERARCHY, JANUARY));
    }
    const cols = (patch) => ({ customer: new Uint32Array([0]), amountMinor: new Float64Array([100]), at: new Float64Array([Date.UTC(2026, 0, 2)]), ...patch });
    for (const [what, columns] of [
      ["fractional cents", cols({ amountMinor: new Float64Array([1.5]) })],
      ["NaN time", cols({ at: new Float64Array([NaN]) })],
      ["short column", cols({ at: new Float64Array(0) })],
      ["wrong array type", cols({ customer: [0] })],
      ["bad kind", cols({ kind: new Uint8Array([7]) })],
      ["unknown key", cols({ extra: new Uint8Array(1) })],
      ["customer out of range", cols({ customer: new Uint32Array([99]) })],
      ["reverses a refund of itself", cols({ reverses: new Int32Array([0]), kind: new Uint8Array([1]) })],
    ]) {
      await bad(what, () => commission({}, columns, HIERARCHY, JANUARY));
    }
    for (const hierarchy of [
      null,
      { resellers: [{ id: "a", parentId: "b", commissionRate: "0.1" }, { id: "b", parentId: "a", commissionRate: "0.1" }], customers: [] },
      { resellers: [{ id: "a", commissionRate: "0.1" }, { id: "a", commissionRate: "0.1" }], customers: [] },
      { resellers: [{ id: "a", commissionRate: "1.5" }], customers: [] },
      { resellers: [{ id: "a", commissionRate: "0.1", parentId: "ghost" }], customers: [] },
      { resellers: [{ id: "a", commissionRate: "0.1" }], customers: [{ id: "c", resellerId: "ghost" }] },
      { ...HIERARCHY, depthMax: 1 },
      { ...HIERARCHY, extra: 1 },
    ]) {
      await bad(`hierarchy ${JSON.stringify(hierarchy)?.slice(0, 60)}`, () => commission({}, pay, hierarchy, JANUARY));
    }
    for (const options of [undefined, {}, { start: "2026-01-01" }, { start: "2026-02-01", end: "2026-01-01" }, { ...JANUARY, currency: "ZZZ" }, { ...JANUARY, lines: "all" }, { ...JANUARY, extra: 1 }, { start: NaN, end: 5 }]) {
      await bad(`options ${JSON.stringify(options)}`, () => commission({}, pay, HIERARCHY, options));
    }
    equal(commission({}, pay, HIERARCHY, JANUARY).resellers[2].direct, "1.50", "still works");
  });

  const PERFECT = { revenue: "10000.00", newCustomers: 10, retentionRate: "0.95", growthRate: "0.10", activeDays: 20, slaCompliance: "0.99", satisfaction: 9 };
  const HALF = { revenue: "5000.00", newCustomers: 5, retentionRate: "0.825", growthRate: 0, slaCompliance: "0.99" };

  t("healthScore: seven weighted components, explained, with missing data re-weighted", () => {
    const { healthScore } = lib;
    const perfect = healthScore(PERFECT);
    equal([perfect.score, perfect.band, perfect.missing, perfect.trend], ["100.00", "healthy", [], null], "a perfect partner");
    equal(perfect.components.map((c) => [c.component, c.weight, c.contribution]), [
      ["revenuePerformance", 25, "25.00"], ["customerAcquisition", 20, "20.00"], ["customerRetention", 20, "20.00"],
      ["growthTrajectory", 15, "15.00"], ["engagement", 10, "10.00"], ["operationalExcellence", 5, "5.00"], ["partnerSatisfaction", 5, "5.00"],
    ], "the reference weights");
    const half = healthScore(HALF, { previous: { score: "60.00" } });
    // (50·25 + 50·20 + 50·20 + 50·15 + 100·5) / 85
    equal([half.score, half.band, half.missing, half.policy], ["52.94", "atRisk", ["engagement", "partnerSatisfaction"], "reweight"], "re-weighted");
    equal(half.components[0], { component: "revenuePerformance", contribution: "14.71", effectiveWeight: "29.41", metric: "revenue", normalised: "50.00", raw: "5000.00", weight: 25 }, "one component explained");
    equal(half.components[4], { component: "engagement", contribution: "0.00", effectiveWeight: "0.00", metric: "activeDays", normalised: null, raw: null, weight: 10 }, "a missing component");
    const sum = (xs) => xs.reduce((a, c) => a + Math.round(Number(c) * 100), 0);
    equal(sum(half.components.map((c) => c.contribution)), 5294, "contributions add up to the score");
    equal(sum(half.components.map((c) => c.effectiveWeight)), 10000, "effective weights add up to 100 %");
    equal(half.trend, { change: "-7.06", direction: "declining", previous: "60.00" }, "trend");
    equal(healthScore(HALF, { missing: "zero" }).score, "45.00", "missing counts as zero");
    equal(healthScore({ ...HALF, activeDays: 10, satisfaction: "7.00" }, { missing: "refuse" }).score, "52.50", "nothing missing");
    equal(healthScore({ revenue: "2500.00" }, { weights: { revenuePerformance: 40, customerAcquisition: 5 } }).components[0].weight, 40, "weights overlay");
    equal(healthScore({ revenue: 250 }, { targets: { revenuePerformance: { floor: 0, target: "1000" } }, currency: "EUR" }).score, "25.00", "targets");
    equal(healthScore({ growthRate: "-0.05" }).score, "25.00", "shrinking 5 % is a quarter of the way");
    // Hysteresis: back from atRisk only at 75.
    equal(["7200.00", "7499.00", "7500.00"].map((revenue) => healthScore({ revenue }, { weights: { revenuePerformance: 100, customerAcquisition: 0, customerRetention: 0, growthTrajectory: 0, engagement: 0, operationalExcellence: 0, partnerSatisfaction: 0 }, previous: { score: 60, band: "atRisk" } }).band), ["atRisk", "atRisk", "healthy"], "hysteresis");
    equal(healthScore({ revenue: 3000 }, { bands: { healthy: 30, atRisk: 10 } }).band, "healthy", "bands are configurable");
  });

  t("healthScoreBatch: columns give what healthScore gives, partner by partner", () => {
    const { healthScore, healthScoreBatch } = lib;
    const n = 500;
    const col = () => new Float64Array(n);
    const c = { revenue: col(), newCustomers: col(), retentionRate: col(), growthRate: col(), activeDays: col(), slaCompliance: col(), satisfaction: col() };
    let seed = 7;
    const next = () => (seed = (seed * 48271) % 2147483647);
    for (let i = 0; i < n; i++) {
      c.revenue[i] = (next() % 2000000) / 100;
      c.newCustomers[i] = next() % 15;
      c.retentionRate[i] = (next() % 10001) / 10000;
      c.growthRate[i] = ((next() % 4001) - 2000) / 10000;
      c.activeDays[i] = i % 9 === 0 ? NaN : next() % 31;
      c.slaCompliance[i] = (next() % 10001) / 10000;
      c.satisfaction[i] = i % 7 === 0 ? NaN : (next() % 1001) / 100;
    }
    const batch = healthScoreBatch(c);
    equal([batch.count, batch.score.constructor.name, batch.bands, batch.components.length], [n, "Uint16Array", ["healthy", "atRisk", "critical"], 7], "shape");
    for (let i = 0; i < n; i++) {
      const metrics = {};
      for (const [k, v] of Object.entries(c)) if (!Number.isNaN(v[i])) metrics[k] = v[i];
      const one = healthScore(metrics);
      equal([(batch.score[i] / 100).toFixed(2), batch.bands[batch.band[i]]], [one.score, one.band], `partner ${i}`);
      equal(batch.missing[i], (Number.isNaN(c.activeDays[i]) ? 16 : 0) | (Number.isNaN(c.satisfaction[i]) ? 64 : 0), `missing bits ${i}`);
    }
    const prev = healthScoreBatch({ revenue: new Float64Array([7200, 7200, 3000]) , previousBand: new Uint8Array([1, 255, 0]) }, { weights: { revenuePerformance: 100, customerAcquisition: 0, customerRetention: 0, growthTrajectory: 0, engagement: 0, operationalExcellence: 0, partnerSatisfaction: 0 } });
    equal([...prev.band], [1, 0, 2], "previous bands with hysteresis");
  });

  t("healthScore: bad input at every argument is INVALID_INPUT", async () => {
    const { healthScore, healthScoreBatch } = lib;
    const bad = (what, fn) => fails(AllyError, "INVALID_INPUT", fn, what);
    for (const metrics of [undefined, null, 5, "x", [], {}, { revenue: NaN }, { revenue: Infinity }, { revenue: "1e3" }, { revenue: "-1.00" }, { revenue: "1.001" }, { newCustomers: 1.5 }, { newCustomers: -1 }, { retentionRate: "1.5" }, { retentionRate: "0.12345" }, { growthRate: "-2" }, { satisfaction: 11 }, { satisfaction: "9.999" }, { activeDays: "many" }, { colour: 1 }, protoKeyed('{"__proto__": {"revenue": 1}}'), { revenue: 1e300 }]) {
      await bad(`metrics ${JSON.stringify(metrics)}`, () => healthScore(metrics));
    }
    for (const options of [5, { weights: { revenuePerformance: 30 } }, { weights: { luck: 5 } }, { weights: { revenuePerformance: 2.5 } }, { targets: { revenuePerformance: { floor: 5, target: 5 } } }, { targets: { revenuePerformance: { floor: 0 } } }, { missing: "guess" }, { bands: { healthy: 30, atRisk: 40 } }, { bands: { healthy: 101 } }, { hysteresis: 40 }, { trendTolerance: -1 }, { previous: { score: 101 } }, { previous: { score: 50, band: "fine" } }, { currency: "ZZZ" }, { extra: 1 }, protoKeyed('{"__proto__": {}}')]) {
      await bad(`options ${JSON.stringify(options)}`, () => healthScore(PERFECT, options));
    }
    const cols = (patch) => ({ revenue: new Float64Array([100, 200]), ...patch });
    for (const [what, columns] of [
      ["not an object", 5], ["no metric column", {}], ["an array column", { revenue: [1, 2] }], ["short column", cols({ activeDays: new Float64Array(1) })],
      ["fractional count", cols({ newCustomers: new Float64Array([1.5, 2]) })], ["Infinity", cols({ revenue: new Float64Array([Infinity, 1]) })],
      ["too many decimals", cols({ retentionRate: new Float64Array([0.123456, 0.5]) })], ["out of range", cols({ retentionRate: new Float64Array([2, 0.5]) })],
      ["bad band", cols({ previousBand: new Uint8Array([7, 0]) })], ["unknown key", cols({ luck: new Float64Array(2) })],
      ["all missing", { revenue: new Float64Array([NaN]) }],
    ]) {
      await bad(`batch ${what}`, () => healthScoreBatch(columns));
    }
    await bad("batch previous option", () => healthScoreBatch(cols({}), { previous: { score: 50 } }));
    // Typed arrays behind a Proxy whose traps throw are no typed arrays: refused, no trap run.
    const trap = () => { throw new Error("trap"); };
    const hidden = (typed) => new Proxy(typed, { getPrototypeOf: trap, get: trap });
    await bad("batch proxied column", () => healthScoreBatch({ revenue: hidden(new Float64Array([1, 2])) }));
    await bad("batch proxied previousBand", () => healthScoreBatch(cols({ previousBand: hidden(new Uint8Array(2)) })));
    equal(healthScore(PERFECT).score, "100.00", "still works");
  });

  /** Two resellers over a host storage and a clock the test moves: top-ups, provisions and
   * clients on known days. */
  const analyticsNetwork = async () => {
    const clock = { now: Date.UTC(2026, 0, 5, 12) };
    const host = hostStorage({ async: true });
    const ally = new Ally({ storage: host, clock: () => new Date(clock.now) });
    const on = (y, m, d) => { clock.now = Date.UTC(y, m - 1, d, 12); };
    const gold = await ally.make().user(1).company("Gold Co").gold().create();
    const std = await ally.make().user(2).company("Standard Co").create();
    on(2026, 1, 10);
    await ally.addCredits(gold, 50000);
    await ally.provision(gold, 2000, "Issue Pro License");
    await ally.clients.make().name("A").reseller(gold).create();
    on(2026, 3, 31);
    await ally.addCredits(gold, 7000);
    await ally.addCredits(std, 1000);
    await ally.clients.make().name("B").reseller(std).create();
    await ally.clients.make().name("C").reseller(std).create();
    await ally.clients.make().name("Direct").create();
    return { ally, host, on, gold, std };
  };

  t("analytics: credit trends by day, month and year, scoped, with empty buckets", async () => {
    const { ally, gold, std } = await analyticsNetwork();
    const a = ally.analytics();
    equal([a.interval, a.resellerId, a.daily().interval, a.forReseller(gold).resellerId], ["monthly", undefined, "daily", gold.id], "handles are immutable");
    equal(await a.monthly().creditTrends("2026-01-01", "2026-06-30"), { "2026-01": 50000, "2026-02": 0, "2026-03": 8000, "2026-04": 0, "2026-05": 0, "2026-06": 0 }, "monthly");
    equal(Object.keys(await a.monthly().creditTrends("2026-01-01", "2026-06-30")), ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"], "keys in order");
    equal(await a.forReseller(gold.id).daily().creditTrends("2026-03-30", new Date(Date.UTC(2026, 3, 1, 23))), { "2026-03-30": 0, "2026-03-31": 7000, "2026-04-01": 0 }, "daily, scoped, a Date as the end");
    equal(await a.yearly().forReseller(std).creditTrends("2025-01-01", "2026-12-31"), { 2025: 0, 2026: 1000 }, "yearly");
    equal(await a.creditTrends("2026-03-31", "2026-03-31"), { "2026-03": 8000 }, "one day");
    equal(await a.tierSnapshot(), { gold: 1, platinum: 0, standard: 1 }, "tier snapshot");
    equal(await a.tierSnapshot("2026-02-01"), { gold: 0, platinum: 0, standard: 0 }, "registered since February");
    equal(await a.totalCreditsDistributed(), 56000, "credits outstanding");
    equal(await a.forReseller(std).totalCreditsDistributed(), 1000, "scoped outstanding");
    const top = await a.topResellers(5, "2026-01-01", "2026-01-31");
    equal(top.map((r) => [r.company, r.tier, r.acquisitions, r.creditVolume, r.provisioned, r.balance]), [["Gold Co", "gold", 1, 50000, 2000, 55000], ["Standard Co", "standard", 0, 0, 0, 1000]], "top resellers in January");
    equal((await a.topResellers(1)).map((r) => r.refid), [gold.refid], "limit 1, all time");
    const stats = await a.resellerStats(gold);
    equal(stats, { id: gold.id, refid: gold.refid, company: "Gold Co", tier: "gold", status: "active", discount: "0.1500", balance: 55000, creditsPurchased: 57000, creditsProvisioned: 2000, transactions: 3, clients: { pending: 1, active: 0, suspended: 0, inactive: 0, total: 1 }, lastActivity: "2026-03-31" }, "reseller stats");
    // A top-up moves the trend at once.
    await ally.addCredits(std, 250);
    equal((await a.creditTrends("2026-03-01", "2026-03-31"))["2026-03"], 8250, "the trend follows a top-up");
  });

  t("client analytics: status breakdown, growth, segmentation and signup trends", async () => {
    const { ally, on, gold, std } = await analyticsNetwork();
    const c = ally.clients.analytics();
    const [first] = await ally.clients.getByReseller(gold);
    await ally.clients.activate(first);
    equal(await c.statusBreakdown(), { pending: 3, active: 1, suspended: 0, inactive: 0 }, "breakdown");
    equal(await c.forReseller(gold).statusBreakdown(), { pending: 0, active: 1, suspended: 0, inactive: 0 }, "scoped breakdown");
    equal([await c.growth(), await c.growth("2026-03-01", "2026-03-31"), await c.forReseller(std).growth("2026-01-01", "2026-01-31")], [4, 3, 0], "growth");
    equal(await c.segmentation(), { standalone: { count: 1, percentage: 25 }, resold: { count: 3, percentage: 75 } }, "segmentation");
    equal(await c.segmentation("2027-01-01", "2027-12-31"), { standalone: { count: 0, percentage: 0 }, resold: { count: 0, percentage: 0 } }, "an empty period");
    equal(await c.monthly().signupTrends("2026-01-01", "2026-04-30"), { "2026-01": 1, "2026-02": 0, "2026-03": 3, "2026-04": 0 }, "signup trends");
    // The reference example: 50 standalone and 100 resold are 33.33 % and 66.67 %.
    const big = new Ally();
    const r = await big.make().user(1).company("R").create();
    for (let i = 0; i < 50; i++) await big.clients.make().name(`S${i}`).create();
    for (let i = 0; i < 100; i++) await big.clients.make().name(`R${i}`).reseller(r).create();
    const seg = await big.clients.analytics().segmentation();
    equal(seg, { standalone: { count: 50, percentage: 33.33 }, resold: { count: 100, percentage: 66.67 } }, "the reference segmentation");
    equal(Math.round((seg.standalone.percentage + seg.resold.percentage) * 100), 10000, "sums to 100.00");
    on(2026, 5, 1);
  });

  t("asReseller: a reseller sees and changes only its own clients and analytics", async () => {
    const { ally, gold, std } = await analyticsNetwork();
    const mine = ally.asReseller(std);
    const theirs = (await ally.clients.getByReseller(gold))[0];
    const own = await mine.clients.getByReseller(std);
    equal(own.map((c) => c.name).sort(), ["B", "C"], "its own clients");
    const made = await mine.clients.make().name("New").create();
    equal(made.resellerId, std.id, "a new client is its own");
    equal((await mine.clients.activate(made)).status, "active", "changes its own");
    const found = await mine.clients.findByRefid(made.refid);
    equal(found.id, made.id, "finds its own");
    const before = JSON.stringify(await ally.clients.find(theirs.id));
    await fails(AllyError, "NOT_FOUND", () => mine.clients.getByReseller(gold), "another's list");
    equal((await mine.clients.getByReseller()).map((c) => c.name).sort(), ["B", "C", "New"], "its own list by default");
    equal((await mine.clients.getByReseller(std.refid)).length, 3, "its own list by refid");
    // Another reseller's client answers as a missing one: neither its reseller nor that it exists
    // is told.
    equal(await mine.clients.find(theirs.id), null, "another's client");
    equal(await mine.clients.findByRefid(theirs.refid), null, "another's refid");
    const hidden = await fails(AllyError, "NOT_FOUND", () => mine.clients.activate(theirs), "another's transition");
    const missing = await fails(AllyError, "NOT_FOUND", () => mine.clients.activate("cl_missing"), "a missing client's transition");
    equal(hidden.message.replace(theirs.id, "<id>"), missing.message.replace("cl_missing", "<id>"), "the same answer");
    ok(!hidden.message.includes(gold.id) && !JSON.stringify(hidden.details).includes(gold.id), "the other reseller is not named");
    await fails(AllyError, "NOT_FOUND", () => mine.clients.make().name("X").reseller(gold).create(), "giving a client to another");
    equal((await mine.clients.make().name("Y").reseller(std.refid).create()).resellerId, std.id, "its refid names itself");
    const direct = (await ally.clients.analytics().segmentation()).standalone.count;
    equal(direct, 1, "one standalone client");
    equal(JSON.stringify(await ally.clients.find(theirs.id)), before, "another's client is unchanged");
    equal(await mine.clients.find("cl_missing"), null, "a missing client is null");
    equal(await mine.analytics().creditTrends("2026-03-01", "2026-03-31"), { "2026-03": 1000 }, "its own trend");
    equal(await mine.analytics().forReseller(std).totalCreditsDistributed(), 1000, "itself again");
    await fails(AllyError, "NOT_FOUND", () => mine.analytics().forReseller(gold).totalCreditsDistributed(), "another's analytics");
    await fails(AllyError, "NOT_FOUND", () => mine.analytics().resellerStats(gold), "another's stats");
    equal(await mine.analytics().forReseller(std.refid).totalCreditsDistributed(), 1000, "itself by refid");
    equal((await mine.analytics().resellerStats(std.refid)).id, std.id, "its stats by refid");
    equal(await mine.clients.analytics().statusBreakdown(), { pending: 3, active: 1, suspended: 0, inactive: 0 }, "its clients' breakdown");
  });

  t("analytics: bad input everywhere is INVALID_INPUT and changes nothing", async () => {
    const { ally, host, gold } = await analyticsNetwork();
    const a = ally.analytics();
    const c = ally.clients.analytics();
    const stored = () => JSON.stringify(["resellers", "clients", "wallets", "outbox"].map((name) => host.dump(name)));
    const snapshot = stored();
    const badDays = [undefined, null, "", "2026-13-01", "2026-02-30", "yesterday", NaN, Infinity, -Infinity, 1e20, {}, [], true, Symbol("d"), 10n];
    for (const bad of badDays) {
      const label = typeof bad === "symbol" ? "symbol" : typeof bad === "bigint" ? "bigint" : JSON.stringify(bad);
      await fails(AllyError, "INVALID_INPUT", () => a.creditTrends(bad, "2026-01-31"), `creditTrends start ${label}`);
      await fails(AllyError, "INVALID_INPUT", () => c.signupTrends("2026-01-01", bad), `signupTrends end ${label}`);
      if (bad !== undefined && bad !== null) {
        await fails(AllyError, "INVALID_INPUT", () => a.tierSnapshot(bad), `tierSnapshot ${label}`);
        await fails(AllyError, "INVALID_INPUT", () => c.statusBreakdown(undefined, bad), `statusBreakdown ${label}`);
        await fails(AllyError, "INVALID_INPUT", () => c.segmentation(bad), `segmentation ${label}`);
        await fails(AllyError, "INVALID_INPUT", () => c.growth(bad), `growth ${label}`);
      }
    }
    await fails(AllyError, "INVALID_INPUT", () => a.creditTrends("2026-02-01", "2026-01-31"), "end before start");
    await fails(AllyError, "INVALID_INPUT", () => a.daily().creditTrends("1000-01-01", "2026-01-31"), "too many buckets");
    equal(Object.keys(await a.yearly().creditTrends("1000-01-01", "2026-01-31")).length, 1027, "the same period by year");
    for (const limit of [0, -1, 1.5, NaN, Infinity, 1001, "5", {}, 2 ** 53]) {
      await fails(AllyError, "INVALID_INPUT", () => a.topResellers(limit), `limit ${String(limit)}`);
    }
    for (const who of [5, {}, [], { id: 5 }, protoKeyed('{"__proto__": {"id": "x"}}'), null]) {
      await fails(AllyError, "INVALID_INPUT", () => a.forReseller(who), `forReseller ${JSON.stringify(who)}`);
      await fails(AllyError, "INVALID_INPUT", () => c.forReseller(who), `client forReseller ${JSON.stringify(who)}`);
    }
    await fails(AllyError, "NOT_FOUND", () => a.forReseller("rs_missing").creditTrends("2026-01-01", "2026-01-31"), "unknown reseller");
    await fails(AllyError, "NOT_FOUND", () => c.forReseller("rs_missing").growth(), "unknown reseller's clients");
    await fails(AllyError, "NOT_FOUND", () => a.resellerStats("rs_missing"), "unknown stats");
    equal(stored(), snapshot, "nothing changed");
    equal((await a.resellerStats(gold)).balance, 55000, "still works");
  });

  t("analytics: a storage that throws or rejects is STORAGE_FAILED, and the next call works", async () => {
    const { ally, host, gold } = await analyticsNetwork();
    const fresh = new Ally({ storage: host });
    const want = await ally.analytics().creditTrends("2026-01-01", "2026-12-31");
    for (const [method, failure] of [["find", "throw"], ["find", "reject"], ["find", "garbage"], ["read", "throw"], ["read", "reject"], ["get", "garbage"]]) {
      host.failNext(method, failure);
      await fails(AllyError, "STORAGE_FAILED", () => fresh.analytics().creditTrends("2026-01-01", "2026-12-31"), `${method} ${failure}`);
      await fails(AllyError, "STORAGE_FAILED", () => fresh.analytics().topResellers(3), `top: ${method} ${failure}`);
      if (method === "find") await fails(AllyError, "STORAGE_FAILED", () => fresh.clients.analytics().segmentation(), `clients: ${method} ${failure}`);
      host.failNext(method, null);
    }
    equal(await fresh.analytics().creditTrends("2026-01-01", "2026-12-31"), want, "then the same answer as before");
    equal((await fresh.analytics().resellerStats(gold)).balance, 55000, "and the wallet replays whole");
  });

  t("ally.health: history, one alert per crossing, the manager's mail, interventions", async () => {
    const sent = [];
    let failMail = false;
    const mail = { send(message) { if (failMail) throw new Error("relay down"); sent.push(message); } };
    const host = hostStorage({ async: true });
    const ally = new Ally({ storage: host, mail, clock: () => new Date(Date.UTC(2026, 10, 1, 9)) });
    const r = await ally.make().user(1).company("Hover & Co").metadata({ accountManager: "am@business.example" }).create();
    const events = [];
    ally.on("healthAlert", (e) => events.push(e));
    const only = { weights: { revenuePerformance: 100, customerAcquisition: 0, customerRetention: 0, growthTrajectory: 0, engagement: 0, operationalExcellence: 0, partnerSatisfaction: 0 } };
    const scores = ["8000.00", "6900.00", "7100.00", "6900.00", "7600.00", "3000.00", "2000.00"];
    const seen = [];
    for (const [i, revenue] of scores.entries()) {
      const done = await ally.health.record(r, { revenue }, { period: `2026-${String(i + 1).padStart(2, "0")}`, options: only });
      seen.push([done.score, done.band, done.alert?.band ?? null, done.sequence]);
    }
    equal(seen, [["80.00", "healthy", null, 1], ["69.00", "atRisk", "atRisk", 2], ["71.00", "atRisk", null, 3], ["69.00", "atRisk", null, 4], ["76.00", "healthy", null, 5], ["30.00", "critical", "critical", 6], ["20.00", "critical", null, 7]], "bands with hysteresis, alerts once per crossing");
    equal(events.map((e) => [e.reseller.id, e.alert.band, e.alert.fromBand, e.notification, "version" in e.reseller]), [[r.id, "atRisk", "healthy", "sent", false], [r.id, "critical", "healthy", "sent", false]], "healthAlert events");
    equal(sent.map((m) => [m.to, m.kind, m.subject]), [["am@business.example", "healthAlert", "Hover & Co: partner health fell to atRisk (69.00)"], ["am@business.example", "healthAlert", "Hover & Co: partner health fell to critical (30.00)"]], "the account manager's mail");
    equal(sent[0].html.includes("Hover &amp; Co"), true, "escaped html");
    const history = await ally.health.history(r);
    equal(history.map((h) => [h.sequence, h.period, h.trend?.direction ?? null]), [[1, "2026-01", null], [2, "2026-02", "declining"], [3, "2026-03", "improving"], [4, "2026-04", "declining"], [5, "2026-05", "improving"], [6, "2026-06", "declining"], [7, "2026-07", "declining"]], "history");
    const open = await ally.health.alerts({ status: "open" });
    equal(open.length, 2, "two open alerts");
    const acknowledged = await ally.health.openIntervention(open[0], { note: "Call booked", openedBy: "am@business.example" });
    equal([acknowledged.status, acknowledged.intervention.note, acknowledged.intervention.closedAt], ["acknowledged", "Call booked", null], "an intervention opens");
    await fails(AllyError, "STATUS_TRANSITION_DENIED", () => ally.health.openIntervention(open[0].id, { note: "Again", openedBy: "x" }), "a second intervention");
    await fails(AllyError, "STATUS_TRANSITION_DENIED", () => ally.health.closeIntervention(open[1].id, { outcome: "x", closedBy: "x" }), "closing none");
    const resolved = await ally.health.closeIntervention(open[0].id, { outcome: "Back on plan", closedBy: "am" });
    equal([resolved.status, resolved.intervention.outcome], ["resolved", "Back on plan"], "and closes");
    equal((await ally.health.alert(open[1].id)).status, "open", "the other is still open");
    equal((await ally.health.alerts({ reseller: r })).map((a) => a.status), ["resolved", "open"], "by reseller");
    // A mail that fails stays in the outbox; the alert stands.
    failMail = true;
    await ally.health.record(r, { revenue: "9000.00" }, { options: only });
    const again = await ally.health.record(r, { revenue: "1000.00" }, { options: only });
    equal([again.alert?.band, events.at(-1).notification], ["critical", "pending"], "the mail is pending");
    failMail = false;
    equal((await ally.checkCredits()).retried, 1, "checkCredits retries it");
    equal(sent.length, 3, "and it is sent");
  });

  t("ally.health: bad input is INVALID_INPUT and changes nothing; storage failures are STORAGE_FAILED", async () => {
    const host = hostStorage({ async: true });
    const ally = new Ally({ storage: host });
    const r = await ally.make().user(1).company("R").create();
    const bad = (what, fn) => fails(AllyError, "INVALID_INPUT", fn, what);
    for (const metrics of [undefined, null, 5, "x", [], {}, { revenue: NaN }, { revenue: Infinity }, { revenue: "1e3" }, { newCustomers: 1.5 }, { colour: 1 }, protoKeyed('{"__proto__": {"revenue": 1}}')]) {
      await bad(`metrics ${JSON.stringify(metrics)}`, () => ally.health.record(r, metrics));
    }
    for (const options of [5, { period: "" }, { period: 5 }, { extra: 1 }, { options: { previous: { score: 50 } } }, { options: { weights: { luck: 5 } } }, { options: 5 }, protoKeyed('{"__proto__": {"period": "x"}}')]) {
      await bad(`options ${JSON.stringify(options)}`, () => ally.health.record(r, { revenue: "1.00" }, options));
    }
    await bad("reseller", () => ally.health.record(5, { revenue: "1.00" }));
    await fails(AllyError, "NOT_FOUND", () => ally.health.record("rs_none", { revenue: "1.00" }), "unknown reseller");
    for (const details of [undefined, {}, { note: "" }, { note: "x" }, { note: "x", openedBy: 5 }, { note: "x", openedBy: "y", extra: 1 }, { note: "x".repeat(2001), openedBy: "y" }]) {
      await bad(`details ${JSON.stringify(details)?.slice(0, 40)}`, () => ally.health.openIntervention("ha_x", details));
    }
    for (const filter of [5, { status: "lost" }, { reseller: 5 }, { extra: 1 }]) {
      await bad(`filter ${JSON.stringify(filter)}`, () => ally.health.alerts(filter));
    }
    await fails(AllyError, "NOT_FOUND", () => ally.health.alert("ha_none"), "unknown alert");
    equal([host.dump("health").length, host.dump("health_scores").length, host.dump("health_alerts").length], [0, 0, 0], "nothing was written");
    for (const [method, failure] of [["get", "throw"], ["put", "reject"], ["find", "garbage"]]) {
      host.failNext(method, failure);
      const call = method === "find" ? () => ally.health.history(r) : () => ally.health.record(r, { revenue: "1.00" });
      await fails(AllyError, "STORAGE_FAILED", call, `${method} ${failure}`);
      host.failNext(method, null);
    }
    const ok = await ally.health.record(r, { revenue: "10000.00" });
    equal([ok.sequence, ok.band], [1, "healthy"], "then it works");
  });

  t("onboarding and lifecycle: data-driven steps, progress, and refusals", async () => {
    let now = Date.UTC(2026, 10, 2, 9);
    const ally = new Ally({ storage: hostStorage({ async: true }), clock: () => new Date(now) });
    const r = await ally.make().user(1).company("R").create();
    const start = await ally.onboarding.progress(r);
    equal([start.completed, start.total, start.progress, start.done, start.tasks.length, start.tasks.filter((t) => t.available).map((t) => t.key)], [0, 11, "0.00", false, 11, ["agreement"]], "the reference checklist");
    await fails(AllyError, "INVALID_INPUT", () => ally.onboarding.complete(r, "taxForms"), "a task before its dependency");
    const one = await ally.onboarding.complete(r, "agreement", { by: "ops@business.example" });
    const agreement = one.tasks.find((t) => t.key === "agreement");
    equal([one.completed, one.progress, agreement.done, agreement.completedBy, agreement.completedAt], [1, "9.09", true, "ops@business.example", "2026-11-02T09:00:00.000Z"], "one task done");
    equal(one.tasks.filter((t) => t.available).map((t) => t.key), ["businessVerification", "taxForms", "portalAccess"], "what opens next");
    await fails(AllyError, "INVALID_INPUT", () => ally.onboarding.complete(r, "agreement"), "done twice");
    await ally.onboarding.complete(r, "taxForms");
    await fails(AllyError, "INVALID_INPUT", () => ally.onboarding.reopen(r, "agreement"), "reopening what others need");
    equal((await ally.onboarding.reopen(r, "taxForms")).completed, 1, "reopened");
    for (const [task, label] of [[5, "number"], ["", "empty"], ["lunch", "unknown"], [null, "null"]]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.onboarding.complete(r, task), `task ${label}`);
    }
    for (const options of [5, { by: "" }, { by: 5 }, { who: "x" }, protoKeyed('{"__proto__": {"by": "x"}}')]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.onboarding.complete(r, "taxForms", options), `options ${JSON.stringify(options)}`);
    }
    await fails(AllyError, "NOT_FOUND", () => ally.onboarding.progress("rs_none"), "unknown reseller");
    equal((await ally.onboarding.progress(r)).completed, 1, "refusals changed nothing");

    const c = await ally.clients.make().name("Acme").reseller(r).create();
    const fresh = await ally.clients.lifecycle(c);
    equal([fresh.stage, fresh.next, fresh.progress, fresh.history.length], ["prospect", ["lead"], "0.00", 0], "a client starts as a prospect");
    await fails(AllyError, "STATUS_TRANSITION_DENIED", () => ally.clients.moveTo(c, "active"), "skipping ahead");
    for (const stage of ["lead", "qualified", "proposal", "negotiation", "contracted", "onboarding", "active"]) {
      now += 86_400_000;
      await ally.clients.moveTo(c, stage, { by: "sales" });
    }
    const active = await ally.clients.lifecycle(c.id);
    equal([active.stage, active.title, active.next, active.progress, active.history.length, active.history[0]], ["active", "Active", ["expansion", "renewal", "atRisk"], "63.63", 7, { at: "2026-11-03T09:00:00.000Z", by: "sales", from: "prospect", to: "lead" }], "moved along");
    await fails(AllyError, "INVALID_INPUT", () => ally.clients.moveTo(c, "moon"), "an unknown stage");
    await fails(AllyError, "NOT_FOUND", () => ally.clients.lifecycle("cl_none"), "an unknown client");
    const other = await ally.make().user(2).company("Other").create();
    await fails(AllyError, "NOT_FOUND", () => ally.asReseller(other).clients.moveTo(c, "atRisk"), "another reseller's client");
    equal((await ally.asReseller(r).clients.moveTo(c, "atRisk")).stage, "atRisk", "its own reseller may");

    // A host's own workflows.
    const custom = new Ally({ config: { onboarding: [{ key: "kickoff", title: "Kick-off call" }, { key: "swag", title: "Send swag", required: false, dependsOn: ["kickoff"] }], lifecycle: [{ key: "trial", title: "Trial", next: ["paid"] }, { key: "paid", title: "Paid", next: ["trial"] }] } });
    const cr = await custom.make().user(1).company("C").create();
    equal((await custom.onboarding.complete(cr, "kickoff")).progress, "100.00", "an optional task is not counted");
    const cc = await custom.clients.make().name("T").create();
    equal((await custom.clients.moveTo(cc, "paid")).progress, "100.00", "a two-stage lifecycle");
    for (const [config, key] of [
      [{ onboarding: [] }, "onboarding"], [{ onboarding: [{ key: "a", title: "A", dependsOn: ["b"] }] }, "onboarding[0].dependsOn"],
      [{ onboarding: [{ key: "a", title: "A" }, { key: "a", title: "B" }] }, "onboarding[1].key"], [{ onboarding: [{ key: "a b", title: "A" }] }, "onboarding[0].key"],
      [{ onboarding: [{ key: "a", title: "A", extra: 1 }] }, "onboarding[0].extra"], [{ lifecycle: [{ key: "a", title: "A", next: ["z"] }] }, "lifecycle[0].next"],
      [{ lifecycle: "stages" }, "lifecycle"],
    ]) {
      const e = await fails(AllyError, "INVALID_CONFIG", () => new Ally({ config }), `config ${JSON.stringify(config)}`);
      equal(e.details.key, key, "the key is named");
    }
  });

  walletStateCases(lib, t, still);
  combineCases(lib, t);
  conformance(h, "memoryStorage()", () => memoryStorage());
  conformance(h, "test host storage", () => hostStorage({ async: true }));

  return h;
}

export async function runSuite(lib, runtime, print) {
  const summary = await cases(lib, runtime).run();
  report(summary, print);
  return summary;
}

/** Runs the suite on the full package and on its pricing-only module; prints one closing line. */
export async function runBoth(full, pricing, runtime, print) {
  const a = await runSuite(full, `${runtime} ally-engine`, print);
  const b = await runSuite(pricing, `${runtime} ally-engine/pricing`, print);
  const summary = { runtime, passed: a.passed + b.passed, failed: a.failed + b.failed, failures: [] };
  print(`[${runtime}] ${summary.passed} passed, ${summary.failed} failed`);
  return summary;
}
