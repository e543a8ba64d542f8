// The storage contract as executable checks. Every adapter the package ships (memoryStorage()
// now; PostgreSQL with the ledger) and any host's own must pass it. `make()` returns a fresh,
// empty storage; answers may be synchronous or Promises.
import { equal, ok } from "./harness.mjs";

const record = (id, version, data, indexes = {}) => ({ id, version, data: JSON.stringify(data), indexes });

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
    equal(await s.append("wallet-1", 0, ["x"], []), "stale", "a stale appender");
    equal(await s.append("wallet-1", 3, ["x"], []), "stale", "a future appender");
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
    equal(await s.append("wallet-1", 0, ["x"], [{ key: "k", position: 0 }]), "stale", "behind");
    equal(await s.append("wallet-1", 2, ["x"], [{ key: "k", position: 2 }]), "stale", "ahead");
    equal(await s.read("wallet-1", 0, 10), ["e0"], "nothing written");
    equal(await s.findClaim("wallet-1", "k"), 0, "the claim is unchanged");
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

  t("stored data comes back byte for byte", async () => {
    const s = make();
    const data = JSON.stringify({ text: "ünïcödé \u2028 \"quoted\" \\ 🎉", n: 12.5, nested: [null, true] });
    await s.put("things", { id: "weird id/ü", version: 1, data, indexes: { k: "v w" } }, 0, ["k"]);
    const got = await s.get("things", "weird id/ü");
    ok(got.data === data, "data");
    equal(got.indexes, { k: "v w" }, "indexes");
  });
}
