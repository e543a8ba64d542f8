// Node only: `import` and `require` share one engine; objects from another realm (a `vm`
// context, as test runners make) read as plain objects; handles dropped without `free()` are
// freed by the garbage collector. Run with --expose-gc.
import { createRequire } from "node:module";
import vm from "node:vm";
import * as esm from "ally-engine";
import { Harness, equal, ok, fails, report } from "../js/harness.mjs";

const require = createRequire(import.meta.url);
const cjs = require("ally-engine");
const h = new Harness("interop");
const t = (name, body) => h.test(name, body);
const CATALOG = [{ sku: "basic", name: "Basic licence", basePrice: 1000 }];

t("import and require load one engine: one AllyError class, one instance", async () => {
  equal(esm.AllyError === cjs.AllyError, true, "the same class");
  equal(esm.Ally === cjs.Ally, true, "the same Ally");
  const fromEsm = await fails(cjs.AllyError, "UNKNOWN_TIER", () => esm.tierCost(1, "diamond"), "thrown by the ESM entry, caught as the CJS class");
  ok(fromEsm instanceof esm.AllyError, "and as the ESM class");
  const ally = new esm.Ally();
  const r = await ally.make().user(1).company("Shared").create();
  await ally.addCredits(r, 10);
  // A handle made through one entry is accepted by the other (one registry of handles).
  equal(await ally.balance(r.id), 10, "the balance");
  await fails(cjs.AllyError, "INSUFFICIENT_CREDITS", () => ally.provision(r, 11), "a refusal across entries");
});

t("objects from another realm are plain objects; its class instances are not", async () => {
  const context = vm.createContext({});
  const request = vm.runInContext(`({ tier: "gold", lines: [{ sku: "basic", quantity: 2 }] })`, context);
  ok(Object.getPrototypeOf(request) !== Object.prototype, "another realm's Object.prototype");
  equal(esm.quote(request, vm.runInContext(JSON.stringify(CATALOG), context)).total, 1700, "a quote from another realm's objects");
  equal(esm.tierCost(1000, "gold", vm.runInContext(`({ rounding: "down" })`, context)), 850, "options from another realm");
  const instance = vm.runInContext(`new (class Cart { constructor() { this.tier = "gold"; this.lines = []; } })()`, context);
  await fails(esm.AllyError, "INVALID_INPUT", () => esm.quote(instance, CATALOG), "a class instance of another realm");
  // A prototype that only looks like Object.prototype (a script's function named Object).
  const forged = Object.create(Object.assign(Object.create(null), { constructor: function Object() {} }));
  forged.tier = "gold";
  forged.lines = [];
  await fails(esm.AllyError, "INVALID_INPUT", () => esm.quote(forged, CATALOG), "a forged Object.prototype");
  // … or one pointing at the real Object, or whose constructor is a getter (never run).
  const pointing = Object.create(Object.assign(Object.create(null), { constructor: Object }));
  Object.assign(pointing, { tier: "gold", lines: [] });
  await fails(esm.AllyError, "INVALID_INPUT", () => esm.quote(pointing, CATALOG), "a prototype naming the real Object");
  let ran = false;
  const getter = Object.create(Object.defineProperty(Object.create(null), "constructor", { get() { ran = true; return Object; } }));
  Object.assign(getter, { tier: "gold", lines: [] });
  await fails(esm.AllyError, "INVALID_INPUT", () => esm.quote(getter, CATALOG), "a constructor getter");
  equal(ran, false, "the getter was not run");
  const ally = new esm.Ally({ config: vm.runInContext(`({ lowCreditThreshold: 5 })`, context) });
  const r = await ally.make().user(2).company("Realm").metadata(vm.runInContext(`({ plan: "a" })`, context)).create();
  equal(r.metadata, { plan: "a" }, "metadata from another realm");
});

t("handles dropped without free() are freed by the garbage collector", async () => {
  ok(typeof globalThis.gc === "function", "run with --expose-gc");
  const ally = new esm.Ally();
  const r = await ally.make().user(3).company("Handles").create();
  const settle = async () => {
    for (let i = 0; i < 4; i++) {
      globalThis.gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const round = async () => {
    for (let i = 0; i < 200_000; i++) {
      const scope = ally.asReseller(r.id);
      if (scope.resellerId !== r.id) throw new Error("a handle for the wrong reseller");
    }
    await settle();
    return process.memoryUsage().rss;
  };
  // The first rounds grow the heaps to their working size; after that, rounds of handles that
  // were freed reuse the same memory. Kept, each round would hold about 16 MiB more of wasm
  // memory (which never shrinks).
  const rounds = [];
  for (let i = 0; i < 8; i++) rounds.push(await round());
  const growth = rounds[7] - rounds[3];
  const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  ok(growth < 8 * 2 ** 20, `four more rounds of 200 000 handles grew the process by ${mib(growth)} (rounds: ${rounds.map(mib).join(", ")})`);
  const kept = ally.asReseller(r.id);
  kept.free();
  equal((await ally.asReseller(r.id).balance()), 0, "the instance keeps working");
});

const summary = await h.run();
report(summary, console.log);
process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
