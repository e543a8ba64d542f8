// Requests combined across engine instances: a host storage with a stream lock and `combine`,
// written from the contract, over a shared store (each instance its own session, as each process
// has its own connection to one database). Part of the suite that every runtime runs.
import { equal, ok, fails } from "./harness.mjs";

/** Sessions over one store and one lock table; `stats` counts leads and answers. */
function combining(inner) {
  const locks = new Map(); // stream → { holder, waiters }
  const queue = []; // { id, stream, request, taken, answer }
  const stats = { leads: 0, answered: 0, queued: 0 };
  let nextId = 0;
  const acquire = (stream, me) =>
    new Promise((resolve) => {
      const lock = locks.get(stream);
      if (!lock) {
        locks.set(stream, { holder: me, waiters: [] });
        resolve();
      } else lock.waiters.push({ me, resolve });
    });
  const release = (stream, me) => {
    const lock = locks.get(stream);
    if (!lock || lock.holder !== me) return;
    const next = lock.waiters.shift();
    if (next) {
      lock.holder = next.me;
      next.resolve();
    } else locks.delete(stream);
  };
  const session = () => {
    const me = {};
    return {
      get: (c, id) => inner.get(c, id),
      find: (c, q) => inner.find(c, q),
      put: (c, r, v, u) => inner.put(c, r, v, u),
      read: (s, from, limit) => inner.read(s, from, limit),
      findClaim: (s, key) => inner.findClaim(s, key),
      append(stream, expected, entries, claims, guard, held, answers) {
        const outcome = inner.append(stream, expected, entries, claims, guard);
        if (held && outcome === "written") {
          for (const { id, answer } of answers ?? []) {
            const q = queue.find((q) => q.id === id && q.taken);
            if (q) q.answer = answer;
          }
          release(stream, me);
        }
        return outcome;
      },
      async lock(stream, from) {
        await acquire(stream, me);
        return inner.read(stream, from, 500);
      },
      unlock: (stream) => release(stream, me),
      async combine(stream, from, request) {
        const id = ++nextId;
        queue.push({ id, stream, request, taken: false, answer: null });
        stats.queued += 1;
        await null; // the request's own round trip: others may queue meanwhile
        await acquire(stream, me);
        const [mine] = queue.splice(queue.findIndex((q) => q.id === id), 1);
        if (mine.answer !== null) {
          release(stream, me);
          stats.answered += 1;
          return { answered: mine.answer };
        }
        const queued = queue.filter((q) => q.stream === stream && !q.taken).slice(0, 64);
        for (const q of queued) q.taken = true;
        stats.leads += 1;
        return { tail: inner.read(stream, from, 500), queued: queued.map(({ id, request }) => ({ id, request })) };
      },
    };
  };
  // A request queued as another process would, whose requester is this test: its record, to
  // read its answer from.
  const inject = (stream, request) => {
    const q = { id: ++nextId, stream, request, taken: false, answer: null };
    queue.push(q);
    return q;
  };
  return { session, stats, inject, left: () => queue.length };
}

export function combineCases(lib, t) {
  const { Ally, AllyError, memoryStorage, validateLedger } = lib;
  const setUp = async (instances, credits, config) => {
    const store = combining(memoryStorage());
    const engines = Array.from({ length: instances }, () => new Ally({ storage: store.session(), config }));
    const r = await engines[0].make().user(1).company("Combined").create();
    if (credits > 0) await engines[0].addCredits(r, credits);
    return { store, engines, r };
  };

  t("provisions awaited together on one instance are written in a few appends, each with its own answer", async () => {
    const inner = memoryStorage();
    let appends = 0;
    // A host storage whose every call suspends, as a database's do.
    const storage = {
      get: async (c, id) => inner.get(c, id),
      find: async (c, q) => inner.find(c, q),
      put: async (c, r, v, u) => inner.put(c, r, v, u),
      read: async (s, from, limit) => inner.read(s, from, limit),
      findClaim: async (s, key) => inner.findClaim(s, key),
      async append(stream, expected, entries, claims, guard, held) {
        await null;
        if (stream.startsWith("ledger:")) appends += 1;
        return inner.append(stream, expected, entries, claims, guard, held);
      },
    };
    const ally = new Ally({ storage, config: { lowCreditThreshold: 50 } });
    const r = await ally.make().user(1).company("Batched").create();
    await ally.addCredits(r, 100);
    const events = [];
    ally.on("lowCredit", (e) => events.push(e.balance));
    appends = 0;
    const costs = Array.from({ length: 40 }, (_, i) => (i === 7 ? 1000 : 3));
    const provisionAll = () => Promise.allSettled(costs.map((cost, i) => ally.provision(r, cost, null, { idempotencyKey: `k${i}` })));
    const settled = await provisionAll();
    const codes = settled.map((s) => (s.status === "fulfilled" ? "ok" : s.reason.code));
    // In order: the 1000 refused, 33 of 3 fit in 100, the last 6 are refused.
    const expected = costs.map((cost, i) => (cost === 1000 ? "INSUFFICIENT_CREDITS" : i < 34 ? "ok" : "INSUFFICIENT_CREDITS"));
    equal(codes, expected, "each answered for itself");
    const entries = settled.filter((s) => s.status === "fulfilled").map((s) => s.value);
    equal(new Set(entries.map((e) => e.sequence)).size, 33, "each with an entry of its own");
    equal(entries.map((e) => e.balanceAfter), Array.from({ length: 33 }, (_, i) => 100 - 3 * (i + 1)), "in the order asked");
    ok(appends <= 4, `33 provisions in ${appends} appends`);
    equal(events, [49], "the crossing raised once, by the provision that crossed");
    equal(await ally.balance(r), 1, "balance");
    // Asked again with the same keys: the same answers, nothing spent.
    const again = await provisionAll();
    equal(again.map((s) => (s.status === "fulfilled" ? s.value.sequence : s.reason.code)), settled.map((s) => (s.status === "fulfilled" ? s.value.sequence : s.reason.code)), "repeats answered as the first time");
    equal(await ally.balance(r), 1, "nothing spent twice");
    equal(validateLedger(await ally.exportLedger(r), { walletId: r.id }).ok, true, "validates");
  });

  t("provisions racing from several instances are settled in batches by the lock's holder, each once", async () => {
    const { store, engines, r } = await setUp(4, 1000);
    const results = await Promise.all(
      engines.map((ally) => (async () => {
        const out = [];
        for (let i = 0; i < 25; i++) out.push(await ally.provision(r, 10));
        return out;
      })()),
    );
    const sequences = results.flat().map((entry) => entry.sequence);
    equal(sequences.length, 100, "every provision answered");
    equal(new Set(sequences).size, 100, "each with an entry of its own");
    ok(store.stats.answered > 0, `some were settled by another instance (${JSON.stringify(store.stats)})`);
    equal(store.left(), 0, "nothing left queued");
    for (const ally of engines) equal(await ally.balance(r), 0, "every instance reads the balance");
    const audit = validateLedger(await engines[0].exportLedger(r), { walletId: r.id });
    equal([audit.ok, audit.entries], [true, 101], "the ledger validates");
  });

  t("a combined batch never overdraws: past the balance every request is refused INSUFFICIENT_CREDITS", async () => {
    const { store, engines, r } = await setUp(4, 1000);
    const refused = {};
    let accepted = 0;
    await Promise.all(
      engines.map(async (ally) => {
        for (let i = 0; i < 30; i++) {
          try {
            await ally.provision(r, 10);
            accepted += 1;
          } catch (e) {
            if (!(e instanceof AllyError)) throw e;
            refused[e.code] = (refused[e.code] ?? 0) + 1;
          }
        }
      }),
    );
    equal([accepted, refused], [100, { INSUFFICIENT_CREDITS: 20 }], "accepted and refused");
    equal(await engines[3].balance(r), 0, "balance");
    ok(store.stats.answered > 0, "some were combined");
    equal(validateLedger(await engines[0].exportLedger(r), { walletId: r.id }).ok, true, "validates");
  });

  t("a key repeated by two instances at once is spent once, and both answer its entry", async () => {
    const { engines, r } = await setUp(3, 1000);
    // A race first, so that the instances combine their next requests.
    await Promise.all(engines.map((ally) => ally.provision(r, 1)));
    const answers = await Promise.all(engines.map((ally) => ally.provision(r, 7, null, { idempotencyKey: "order-1" })));
    equal(new Set(answers.map((e) => e.id)).size, 1, "one entry for the key");
    equal(await engines[0].balance(r), 1000 - 3 - 7, "spent once");
    await fails(AllyError, "IDEMPOTENCY_MISMATCH", () => engines[1].provision(r, 8, null, { idempotencyKey: "order-1" }));
  });

  t("a queued request whose key was claimed before is answered unsettled, and the rest of the batch is still written", async () => {
    const { store, engines, r } = await setUp(2, 1000);
    await engines[0].provision(r, 5, null, { idempotencyKey: "k1" });
    // A race, so that the next request on this wallet goes through the lock.
    await Promise.all(engines.map((ally) => ally.provision(r, 1)));
    const queued = (key, amount) =>
      store.inject(`ledger:${r.id}`, JSON.stringify({ kind: "provision", items: [{ amount, memo: null }], key, at: Date.now() }));
    const repeat = queued("k1", 5);
    const fresh = [queued("k2", 3), queued(null, 4)];
    const own = await engines[0].provision(r, 2);
    ok(own.sequence > 0, "the lead's own provision");
    equal(repeat.answer, "unsettled", "the repeat goes back to its requester");
    for (const q of fresh) ok(q.answer?.startsWith("written\n"), `settled in the batch: ${q.answer}`);
    equal(await engines[0].balance(r), 1000 - 5 - 2 - 2 - 3 - 4, "spent once each");
    equal(validateLedger(await engines[0].exportLedger(r), { walletId: r.id }).ok, true, "validates");
  });

  t("the low-credit crossing of a combined batch is raised once, by the request that crossed", async () => {
    const { store, engines, r } = await setUp(4, 600, { lowCreditThreshold: 500 });
    const events = [];
    engines.forEach((ally, i) => ally.on("lowCredit", (e) => events.push([i, e.balance])));
    const crossed = [];
    await Promise.all(
      engines.map((ally, i) => (async () => {
        for (let n = 0; n < 5; n++) {
          const entry = await ally.provision(r, 10);
          if (entry.balanceAfter < 500 && entry.balanceAfter + 10 >= 500) crossed.push([i, entry.balanceAfter]);
        }
      })()),
    );
    equal(await engines[0].balance(r), 400, "balance");
    equal(events, crossed, "one event, from the instance whose provision crossed");
    equal(events.length, 1, "once");
    ok(store.stats.leads > 0, "the instances combined");
  });
}
