// The storage contract as executable checks. Every adapter the package ships (memoryStorage()
// now; PostgreSQL with the ledger) and any host's own must pass it. `make()` returns a fresh,
// empty storage; answers may be synchronous or Promises.
import { equal, ok } from "./harness.mjs";

const record = (id, version, data, indexes = {}) => ({ id, version, data: JSON.stringify(data), indexes });

// A length mismatch answers "stale", or { stale: entries } with exactly the stream's entries from
// the expected length on (at most 500): either is the contract, the second spares the caller a read.
function stale(answer, tail, what) {
  if (answer !== "stale") equal(answer, { stale: tail }, `${what} (stale, or stale with the entries from the expected length on)`);
}

const entriesFrom = (from, to) => Array.from({ length: to - from }, (_, i) => `e${from + i}`);

export function conformance(h, label, make) {
  const t = (name, body) => h.test(`${label}: ${name}`, body);

  t("get answers null for a missing record", async () => {
    const s = make();
    equal(await s.get("things", "nope"), null, "missing");
  });

  t("put creates with expectedVersion 0 and refuses a second create", async () => {
    const s = make();
    equal(await s.put("things", record("a", 1, { n: 1 }, { kind: "x" }), 0, []), "written", "create");
    equal(await s.put("things", record("a", 1, { n: 2 }, { kind: "x" }), 0, []), "stale", "second create");
    const got = await s.get("things", "a");
    equal([got.id, got.version, JSON.parse(got.data), got.indexes], ["a", 1, { n: 1 }, { kind: "x" }], "kept the first");
  });

  t("put is compare-and-set on the version", async () => {
    const s = make();
    await s.put("things", record("a", 1, { n: 1 }), 0, []);
    equal(await s.put("things", record("a", 2, { n: 2 }), 1, []), "written", "from 1 to 2");
    equal(await s.put("things", record("a", 2, { n: 3 }), 1, []), "stale", "a stale writer");
    equal(await s.put("things", record("a", 4, { n: 4 }), 3, []), "stale", "a writer from the future");
    equal(JSON.parse((await s.get("things", "a")).data), { n: 2 }, "the winner's data");
    equal((await s.get("things", "a")).version, 2, "version");
  });

  t("unique indexes refuse a second holder, and free the value when it changes", async () => {
    const s = make();
    await s.put("users", record("u1", 1, {}, { email: "a@x.co" }), 0, ["email"]);
    equal(await s.put("users", record("u2", 1, {}, { email: "a@x.co" }), 0, ["email"]), { duplicate: "email" }, "taken");
    equal(await s.get("users", "u2"), null, "nothing written");
    equal(await s.put("users", record("u1", 2, {}, { email: "b@x.co" }), 1, ["email"]), "written", "u1 moves");
    equal(await s.put("users", record("u2", 1, {}, { email: "a@x.co" }), 0, ["email"]), "written", "the old value is free");
    equal(await s.put("users", record("u1", 3, {}, { email: "b@x.co" }), 2, ["email"]), "written", "a record keeps its own value");
    equal(await s.put("other", record("o1", 1, {}, { email: "a@x.co" }), 0, ["email"]), "written", "uniqueness is per collection");
  });

  t("find filters by one index value, in id order, after a cursor, within a limit", async () => {
    const s = make();
    for (const [id, tier] of [["c", "gold"], ["a", "gold"], ["d", "basic"], ["b", "gold"], ["e", "gold"]]) {
      await s.put("resellers", record(id, 1, { id }, { tier }), 0, []);
    }
    const ids = async (query) => (await s.find("resellers", query)).map((r) => r.id);
    equal(await ids({ limit: 10 }), ["a", "b", "c", "d", "e"], "all, by id");
    equal(await ids({ index: "tier", value: "gold", limit: 10 }), ["a", "b", "c", "e"], "gold");
    equal(await ids({ index: "tier", value: "gold", limit: 2 }), ["a", "b"], "first page");
    equal(await ids({ index: "tier", value: "gold", after: "b", limit: 2 }), ["c", "e"], "second page");
    equal(await ids({ after: "d", limit: 10 }), ["e"], "after, unfiltered");
    equal(await ids({ index: "tier", value: "platinum", limit: 10 }), [], "none");
    await s.put("resellers", record("c", 2, { id: "c" }, { tier: "basic" }), 1, []);
    equal(await ids({ index: "tier", value: "gold", limit: 10 }), ["a", "b", "e"], "an update moves the index entry");
    equal(await ids({ index: "tier", value: "basic", limit: 10 }), ["c", "d"], "to its new value");
  });

  t("append is all or none, guarded by the expected length", async () => {
    const s = make();
    equal(await s.append("wallet-1", 0, ["e1", "e2"], []), "written", "first entries");
    stale(await s.append("wallet-1", 0, ["x"], []), ["e1", "e2"], "a stale appender");
    stale(await s.append("wallet-1", 3, ["x"], []), [], "a future appender");
    equal(await s.append("wallet-1", 2, ["e3"], []), "written", "next");
    equal(await s.read("wallet-1", 0, 10), ["e1", "e2", "e3"], "all");
    equal(await s.read("wallet-1", 1, 1), ["e2"], "a window");
    equal(await s.read("wallet-1", 5, 10), [], "past the end");
    equal(await s.read("wallet-2", 0, 10), [], "another stream is empty");
  });

  t("append claims idempotency keys with its entries, and findClaim answers their positions", async () => {
    const s = make();
    equal(await s.append("wallet-1", 0, ["e0", "e1"], [{ key: "k0", position: 0 }, { key: "k1", position: 1 }]), "written", "first");
    equal(await s.append("wallet-1", 2, ["e2"], []), "written", "no claims");
    equal(await s.append("wallet-1", 3, ["e3", "e4"], [{ key: "k4", position: 4 }]), "written", "a claim on a later entry");
    equal(await s.read("wallet-1", 0, 10), ["e0", "e1", "e2", "e3", "e4"], "entries");
    equal(
      [await s.findClaim("wallet-1", "k0"), await s.findClaim("wallet-1", "k1"), await s.findClaim("wallet-1", "k4")],
      [0, 1, 4],
      "positions",
    );
  });

  t("claim positions come back as numbers", async () => {
    const s = make();
    const entries = Array.from({ length: 12 }, (_, i) => `e${i}`);
    equal(await s.append("wallet-1", 0, entries, [{ key: "late", position: 11 }]), "written", "append");
    const position = await s.findClaim("wallet-1", "late");
    ok(typeof position === "number", `a number, got ${typeof position} ${JSON.stringify(position)}`);
    equal(position, 11, "position");
  });

  t("a claimed key refuses the whole append and writes nothing", async () => {
    const s = make();
    await s.append("wallet-1", 0, ["e0"], [{ key: "k0", position: 0 }]);
    equal(
      await s.append("wallet-1", 1, ["e1", "e2"], [{ key: "k1", position: 1 }, { key: "k0", position: 2 }]),
      { claimed: "k0" },
      "the claimed key",
    );
    equal(await s.read("wallet-1", 0, 10), ["e0"], "no entries written");
    equal(await s.findClaim("wallet-1", "k1"), null, "the free key of the refused append is not claimed");
    equal(await s.findClaim("wallet-1", "k0"), 0, "the claimed key keeps its position");
    equal(await s.append("wallet-1", 1, ["e1"], [{ key: "k1", position: 1 }]), "written", "the length did not move");
    equal(await s.findClaim("wallet-1", "k1"), 1, "then the free key is claimed");
  });

  t("a key twice in one append's claims refuses it", async () => {
    const s = make();
    equal(
      await s.append("wallet-1", 0, ["e0", "e1"], [{ key: "k", position: 0 }, { key: "k", position: 1 }]),
      { claimed: "k" },
      "the repeated key",
    );
    equal(await s.read("wallet-1", 0, 10), [], "no entries written");
    equal(await s.findClaim("wallet-1", "k"), null, "not claimed");
    equal(await s.append("wallet-1", 0, ["e0"], [{ key: "k", position: 0 }]), "written", "the stream is still empty");
  });

  t("a stale append answers stale even when its key is claimed", async () => {
    const s = make();
    await s.append("wallet-1", 0, ["e0"], [{ key: "k", position: 0 }]);
    stale(await s.append("wallet-1", 0, ["x"], [{ key: "k", position: 0 }]), ["e0"], "behind");
    stale(await s.append("wallet-1", 2, ["x"], [{ key: "k", position: 2 }]), [], "ahead");
    equal(await s.read("wallet-1", 0, 10), ["e0"], "nothing written");
    equal(await s.findClaim("wallet-1", "k"), 0, "the claim is unchanged");
  });

  t("a stale append's entries are the stream's from the expected length on", async () => {
    const s = make();
    equal(await s.append("wallet-1", 0, ["e1", "e2", "e3"], []), "written", "three entries");
    stale(await s.append("wallet-1", 1, ["x"], []), ["e2", "e3"], "one behind the start");
    stale(await s.append("wallet-1", 0, ["x"], []), ["e1", "e2", "e3"], "from the start");
    stale(await s.append("wallet-1", 5, ["x"], []), [], "beyond the end");
    stale(await s.append("wallet-2", 2, ["x"], []), [], "an unknown stream");
    equal(await s.read("wallet-1", 0, 10), ["e1", "e2", "e3"], "nothing written");
    equal(await s.read("wallet-2", 0, 10), [], "nothing written to the unknown stream");
  });

  t("a stale append hands back at most 500 entries", async () => {
    const s = make();
    equal(await s.append("wallet-1", 0, entriesFrom(0, 600), []), "written", "600 entries");
    stale(await s.append("wallet-1", 0, ["x"], []), entriesFrom(0, 500), "600 behind: the first 500");
    stale(await s.append("wallet-1", 100, ["x"], []), entriesFrom(100, 600), "500 behind: all of them");
    stale(await s.append("wallet-1", 550, ["x"], []), entriesFrom(550, 600), "50 behind");
    equal((await s.read("wallet-1", 0, 1000)).length, 600, "nothing written");
  });

  const guard = (id, version, collection = "things") => ({ collection, id, version });

  t("a guarded append goes ahead while the guard's record is at its version", async () => {
    const s = make();
    await s.put("things", record("a", 1, {}), 0, []);
    equal(await s.append("wallet-1", 0, ["e0"], [{ key: "k0", position: 0 }], guard("a", 1)), "written", "at version 1");
    await s.put("things", record("a", 2, {}), 1, []);
    equal(await s.append("wallet-1", 1, ["e1"], [{ key: "k1", position: 1 }], guard("a", 2)), "written", "at version 2");
    equal(await s.append("wallet-1", 2, ["e2"], [], null), "written", "a null guard guards nothing");
    equal(await s.read("wallet-1", 0, 10), ["e0", "e1", "e2"], "entries");
    equal([await s.findClaim("wallet-1", "k0"), await s.findClaim("wallet-1", "k1")], [0, 1], "claims");
    equal((await s.get("things", "a")).version, 2, "the guard's record is only read");
  });

  t("a guard on another version, a missing record or another collection answers changed and writes nothing", async () => {
    const s = make();
    await s.put("things", record("a", 1, {}), 0, []);
    await s.put("things", record("a", 2, {}), 1, []);
    await s.put("others", record("b", 1, {}), 0, []);
    equal(await s.append("wallet-1", 0, ["e0"], [{ key: "k0", position: 0 }]), "written", "unguarded");
    const claims = [{ key: "k1", position: 1 }];
    for (const [g, what] of [
      [guard("a", 1), "an older version"],
      [guard("a", 3), "a newer version"],
      [guard("nope", 1), "a missing record"],
      [guard("nope", 0), "a missing record at version 0"],
      [guard("a", 2, "others"), "the id in another collection"],
      [guard("b", 1), "another collection's record"],
    ]) {
      equal(await s.append("wallet-1", 1, ["e1"], claims, g), "changed", what);
    }
    equal(await s.read("wallet-1", 0, 10), ["e0"], "no entries written");
    equal(await s.findClaim("wallet-1", "k1"), null, "no claims written");
    equal(await s.append("wallet-2", 0, ["f0"], [{ key: "k", position: 0 }], guard("a", 1)), "changed", "a first append");
    equal([await s.read("wallet-2", 0, 10), await s.findClaim("wallet-2", "k")], [[], null], "the new stream is still empty");
    equal(await s.append("wallet-1", 1, ["e1"], claims, guard("a", 2)), "written", "the length did not move");
    equal(await s.append("wallet-2", 0, ["f0"], [{ key: "k", position: 0 }], guard("b", 1, "others")), "written", "nor did the new stream's");
    equal([await s.read("wallet-1", 0, 10), await s.findClaim("wallet-1", "k1")], [["e0", "e1"], 1], "then written");
  });

  t("a stale append answers stale even when its guard has changed", async () => {
    const s = make();
    await s.put("things", record("a", 1, {}), 0, []);
    equal(await s.append("wallet-1", 0, ["e0"], []), "written", "first");
    stale(await s.append("wallet-1", 0, ["x"], [], guard("a", 2)), ["e0"], "behind");
    stale(await s.append("wallet-1", 2, ["x"], [], guard("nope", 1)), [], "ahead");
    stale(await s.append("wallet-2", 1, ["x"], [], guard("nope", 1)), [], "an unknown stream");
    equal(await s.read("wallet-1", 0, 10), ["e0"], "nothing written");
  });

  t("a changed guard answers changed even when a key is claimed", async () => {
    const s = make();
    await s.put("things", record("a", 1, {}), 0, []);
    equal(await s.append("wallet-1", 0, ["e0"], [{ key: "k0", position: 0 }]), "written", "first");
    equal(await s.append("wallet-1", 1, ["e1"], [{ key: "k0", position: 1 }], guard("a", 2)), "changed", "a key claimed already");
    equal(
      await s.append("wallet-1", 1, ["e1", "e2"], [{ key: "k", position: 1 }, { key: "k", position: 2 }], guard("a", 2)),
      "changed",
      "a key twice",
    );
    equal(await s.append("wallet-1", 1, ["e1"], [{ key: "k0", position: 1 }], guard("a", 1)), { claimed: "k0" }, "claimed once the guard holds");
    equal([await s.read("wallet-1", 0, 10), await s.findClaim("wallet-1", "k0")], [["e0"], 0], "nothing written");
  });

  t("claims are per stream", async () => {
    const s = make();
    equal(await s.append("wallet-1", 0, ["a0"], [{ key: "k", position: 0 }]), "written", "one stream");
    equal(await s.append("wallet-2", 0, ["b0", "b1"], [{ key: "k", position: 1 }]), "written", "the same key in another");
    equal([await s.findClaim("wallet-1", "k"), await s.findClaim("wallet-2", "k")], [0, 1], "each its own position");
  });

  t("findClaim answers null for an unknown key or stream", async () => {
    const s = make();
    equal(await s.findClaim("wallet-1", "k"), null, "an empty storage");
    await s.append("wallet-1", 0, ["e0"], [{ key: "k", position: 0 }]);
    equal(await s.findClaim("wallet-1", "other"), null, "an unknown key");
    equal(await s.findClaim("wallet-2", "k"), null, "an unknown stream");
  });

  t("stored data comes back as the same JSON value", async () => {
    const s = make();
    const value = { text: "ünïcödé \u2028 \"quoted\" \\ 🎉", n: 12.5, nested: [null, true, { b: 1, a: 2 }] };
    const data = JSON.stringify(value);
    await s.put("things", { id: "weird id/ü", version: 1, data, indexes: { k: "v w" } }, 0, ["k"]);
    const got = await s.get("things", "weird id/ü");
    // A database may keep it as jsonb: spacing and key order may differ, the value may not.
    const canonical = (v) => JSON.stringify(v, (_, x) => (x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
    equal(canonical(JSON.parse(got.data)), canonical(value), "data");
    equal(got.indexes, { k: "v w" }, "indexes");
  });
}
