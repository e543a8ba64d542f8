// Node only, in a process of its own: prototypes a host has hardened or polluted in ways no
// other test may leave behind. Results are built as JSON.parse builds them (own data
// properties; no inherited setter runs, a frozen prototype refuses nothing), and a record read
// while a getter calls the engine again keeps its own limits.
import { Ally, AllyError, quote } from "ally-engine";
import { Harness, equal, ok, fails, report } from "../js/harness.mjs";

const h = new Harness("hardened");
const t = (name, body) => h.test(name, body);
const PRODUCTS = [{ sku: "w", name: "Widget", basePrice: 100 }];
const REQUEST = { tier: "gold", lines: [{ sku: "w", quantity: 1 }] };

t("a getter that calls the engine in the middle of a record leaves the record's size limit whole", async () => {
  const request = {
    ...REQUEST,
    j1: new Array(600_000).fill(0),
    get re() {
      quote(REQUEST, PRODUCTS);
      return 1;
    },
    j2: new Array(600_000).fill(0),
  };
  const err = await fails(AllyError, "INVALID_INPUT", () => quote(request, PRODUCTS), "1 200 000 values");
  ok(err.message.includes("more than 1000000 values"), err.message);
});

t("setters on Object.prototype and Array.prototype see nothing of a result", async () => {
  // The setters note the objects they were called on (Node itself trips them, loading its own
  // modules): none may be part of a result.
  const touched = new Set();
  const note = function () {
    touched.add(this);
  };
  Object.defineProperty(Object.prototype, "brand", { set: note, get: () => "inherited", configurable: true });
  Object.defineProperty(Array.prototype, "0", { set: note, get: () => "inherited", configurable: true });
  try {
    const ally = new Ally();
    const r = await ally.make().user(1).company("Hardened").metadata({ brand: "acme", list: ["a", "b", "c", "d", "e"], pair: ["x", "y"] }).create();
    const q = quote(REQUEST, PRODUCTS);
    const own = (object, key) => Object.getOwnPropertyDescriptor(object, key)?.value;
    equal(own(r.metadata, "brand"), "acme", "an own brand");
    equal([own(r.metadata.list, 0), own(r.metadata.list, 4), own(r.metadata.pair, 0)], ["a", "e", "x"], "own items, in long and short arrays");
    equal([own(q.lines, 0)?.sku, own(q.request.lines, 0)?.sku, own(own(q.lines, 0).bands, 0)?.quantity], ["w", "w", 1], "a quote's lines, echoed lines and bands");
    const parts = [r, r.metadata, r.metadata.list, r.metadata.pair, q, q.lines, q.request.lines, own(q.lines, 0).bands];
    equal(parts.filter((part) => touched.has(part)).length, 0, "no setter ran on a result");
  } finally {
    delete Object.prototype.brand;
    delete Array.prototype[0];
  }
});

t("an Object.prototype polluted with get, set or value changes no result", async () => {
  const ran = { calls: 0 };
  Object.defineProperty(Object.prototype, "get", { get: () => (ran.calls += 1, undefined), configurable: true });
  Object.prototype.set = undefined;
  try {
    const ally = new Ally();
    const r = await ally.make().user(3).company("Descriptors").metadata({ a: 1, nested: { b: [1, 2] } }).create();
    equal([r.metadata.a, r.metadata.nested.b.join(",")], [1, "1,2"], "metadata, a map, decoded");
    equal(quote(REQUEST, PRODUCTS).total, 85, "quotes price");
    equal(ran.calls, 0, "no inherited get was read");
  } finally {
    delete Object.prototype.get;
    delete Object.prototype.set;
  }
});

t("a frozen Object.prototype refuses no result (keys like toString are own properties)", async () => {
  const ally = new Ally();
  Object.freeze(Object.prototype);
  const r = await ally.make().user(2).company("Frozen").metadata({ toString: "x", valueOf: "y" }).create();
  equal([r.metadata.toString, r.metadata.valueOf], ["x", "y"], "created");
  const again = await ally.find(r.id);
  equal(again.metadata.toString, "x", "and read back");
  equal(quote(REQUEST, PRODUCTS).total, 85, "quotes still price");
});

const summary = await h.run();
report(summary, console.log);
process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
