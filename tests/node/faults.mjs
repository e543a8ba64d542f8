// Fault injection: a storage that throws (first pass) or rejects (second pass) at call k, for
// every k of a scenario mixing top-ups, provisions, bulk provisions and low-credit mail. Each
// operation that fails is retried with its idempotency key, as a host would. Afterwards the
// ledger validates, no bulk is half-written, every operation is there exactly once, and the
// current low-credit crossing was mailed (a repeat carries the same idempotency key).
import { Ally, AllyError, memoryStorage, validateLedger } from "ally-engine";
import { Harness, equal, ok, report } from "../js/harness.mjs";

const METHODS = ["get", "find", "put", "append", "read", "findClaim"];

function faulty(inner, k, mode) {
  let calls = 0;
  const storage = {};
  for (const m of METHODS) {
    storage[m] = (...args) => {
      calls += 1;
      if (calls === k) {
        if (mode === "throw") throw new Error(`injected fault at call ${k}`);
        // Reject after the write has landed half the time: the engine never hears it succeeded.
        if (k % 2 === 0) return Promise.resolve(inner[m](...args)).then(() => Promise.reject(new Error(`lost reply at call ${k}`)));
        return Promise.reject(new Error(`injected rejection at call ${k}`));
      }
      return inner[m](...args);
    };
  }
  return { storage, calls: () => calls };
}

const SCENARIO = [
  ["addCredits", 1000, { idempotencyKey: "t1", memo: "wire" }],
  ["provision", 300, "licence", { idempotencyKey: "p1" }],
  ["provisionBulk", [{ cost: 100 }, { cost: 50, memo: "seat" }], { idempotencyKey: "b1" }],
  ["provision", 100, null, { idempotencyKey: "p2" }], // 450: crosses 500
  ["addCredits", 700, { idempotencyKey: "t2" }], // 1150
  ["provisionBulk", [{ cost: 400 }, { cost: 300 }], { idempotencyKey: "b2" }], // 450: crosses again
  ["provisionBulk", [{ cost: 400 }, { cost: 300 }], { idempotencyKey: "b3" }], // refused: 700 > 450
  ["provision", 50, "small", { idempotencyKey: "p3" }], // 400
];

async function play(storage, mail) {
  const ally = new Ally({ storage, mail, config: { lowCreditThreshold: 500 } });
  let reseller = null;
  for (let attempt = 0; attempt < 3 && !reseller; attempt++) {
    try {
      reseller = await ally.make().user(1).company("Faulty Storage Inc").email("ops@faulty.example").create();
    } catch (e) {
      if (!(e instanceof AllyError)) throw e;
      if (e.code === "ALREADY_EXISTS") reseller = await ally.findByUser(1);
    }
  }
  const outcomes = [];
  for (const [method, ...args] of SCENARIO) {
    let outcome;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await ally[method](reseller.id, ...args);
        outcome = "ok";
        break;
      } catch (e) {
        if (!(e instanceof AllyError)) throw e;
        outcome = e.code;
        if (e.code !== "STORAGE_FAILED") break;
      }
    }
    outcomes.push(outcome);
  }
  // The daily job repairs and retries what a fault interrupted.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await ally.checkCredits();
      break;
    } catch (e) {
      if (!(e instanceof AllyError) || e.code !== "STORAGE_FAILED") throw e;
    }
  }
  return { ally, reseller, outcomes };
}

const h = new Harness("faults");
const clean = await play(memoryStorage(), { send() {} });
const cleanLedger = await clean.ally.ledger(clean.reseller);
const expectedBalance = await clean.ally.balance(clean.reseller);
const total = (() => {
  const probe = faulty(memoryStorage(), Infinity, "throw");
  return play(probe.storage, { send() {} }).then(() => probe.calls());
})();

const superseded = [];
for (const mode of ["throw", "reject"]) {
  h.test(`storage that ${mode}s at call k, for every k of the scenario`, async () => {
    const calls = await total;
    ok(calls >= 20, `the scenario makes enough storage calls (${calls})`);
    for (let k = 1; k <= calls; k++) {
      const inner = memoryStorage();
      const mails = [];
      const { storage } = faulty(inner, k, mode);
      const { reseller, outcomes } = await play(storage, { send: (m) => void mails.push(m.idempotencyKey) });
      const where = `${mode} at call ${k}`;
      equal(outcomes, clean.outcomes, `${where}: outcomes after retries`);
      const viewer = new Ally({ storage: inner });
      const ledger = await viewer.ledger(reseller);
      const audit = validateLedger(ledger, { walletId: reseller.id });
      ok(audit.ok, `${where}: the ledger validates (${JSON.stringify(audit.violations.slice(0, 2))})`);
      equal(await viewer.balance(reseller), expectedBalance, `${where}: balance`);
      const shape = (l) => l.map((e) => [e.kind, e.amount, e.memo, e.idempotencyKey, e.batch && e.batch.size]);
      equal(shape(ledger), shape(cleanLedger), `${where}: every operation exactly once, bulks whole`);
      // The current crossing is always mailed (checkCredits repairs a lost notification). A
      // crossing that a later top-up made moot is not mailed late if a fault lost its
      // notification: telling a reseller its balance is low after it topped up would be wrong.
      const distinct = [...new Set(mails)].sort();
      const [first, current] = [`lowCredit:${reseller.id}:5`, `lowCredit:${reseller.id}:8`];
      ok(distinct.includes(current), `${where}: the current crossing was mailed (${distinct})`);
      ok(distinct.every((key) => key === first || key === current), `${where}: only real crossings mailed (${distinct})`);
      if (!distinct.includes(first)) superseded.push(where);
    }
  });
}

const summary = await h.run();
console.log(`[faults] runs where a fault lost the notification of a crossing a later top-up made moot: ${superseded.join(", ") || "none"}`);
report(summary, console.log);
process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
