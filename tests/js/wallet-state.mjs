// Wallet state whose cost follows the work, from JavaScript: checkpoints, claimed idempotency
// keys, the operator's audit, suspension, and the money-path refusals. Part of the suite that
// every runtime runs.
import { equal, ok, fails } from "./harness.mjs";
import { hostStorage } from "./host-storage.mjs";

/** A host storage over a memoryStorage, counting the entries streams hand out. */
function counting(inner) {
  const counts = { reads: 0, entries: 0, claims: 0 };
  return {
    counts,
    reset() {
      Object.assign(counts, { reads: 0, entries: 0, claims: 0 });
    },
    get: (c, id) => inner.get(c, id),
    find: (c, q) => inner.find(c, q),
    put: (c, r, v, u) => inner.put(c, r, v, u),
    append: (s, n, e, claims) => inner.append(s, n, e, claims),
    read(s, from, limit) {
      const page = inner.read(s, from, limit);
      counts.reads += 1;
      counts.entries += page.length;
      return page;
    },
    findClaim(s, key) {
      counts.claims += 1;
      return inner.findClaim(s, key);
    },
  };
}

export function walletStateCases(lib, t, still) {
  const { Ally, AllyError, memoryStorage, validateLedger, verifyAttestation } = lib;

  t("a fresh instance resumes from the checkpoint and reads only the tail", async () => {
    const storage = counting(memoryStorage());
    const writer = new Ally({ storage });
    const r = await writer.make().user(1).company("Long history").create();
    await writer.addCredits(r, 1_000_000);
    for (let i = 0; i < 300; i++) await writer.provision(r, 1, null, { idempotencyKey: `p-${i}` });
    const record = JSON.parse(storage.get("wallets", r.id).data);
    ok(record.checkpoint.length >= 300 - 64 && record.checkpoint.length <= 301, `checkpoint at ${record.checkpoint.length}`);
    equal(record.checkpoint.balance, 1_000_000 - (record.checkpoint.length - 1), "the checkpoint's balance");
    storage.reset();
    const cold = new Ally({ storage });
    equal(await cold.balance(r), 1_000_000 - 300, "balance");
    ok(storage.counts.entries <= 66, `a cold balance read ${storage.counts.entries} entries`);
    storage.reset();
    const again = await cold.provision(r, 1, null, { idempotencyKey: "p-2" });
    equal([again.sequence, again.balanceAfter], [4, 1_000_000 - 3], "a key from long ago, answered as the first time");
    equal([storage.counts.claims, storage.counts.entries], [1, 1], "one claim lookup, one entry read");
    await fails(AllyError, "IDEMPOTENCY_MISMATCH", () => cold.provision(r, 2, null, { idempotencyKey: "p-2" }));
    const audit = await cold.auditWallet(r);
    equal([audit.ok, audit.entries, audit.balance, audit.checkpoint.matches], [true, 301, 1_000_000 - 300, true], "the operator's audit");
    equal(validateLedger(await cold.exportLedger(r), { walletId: r.id }).entries, 301, "the whole history is still there");
  });

  t("a checkpoint whose entries are gone is refused, and the audit says so", async () => {
    const source = memoryStorage();
    const writer = new Ally({ storage: source });
    const r = await writer.make().user(1).company("Restored").create();
    await writer.addCredits(r, 1000);
    for (let i = 0; i < 100; i++) await writer.provision(r, 1);
    const stream = `ledger:${r.id}`;
    const kept = source.read(stream, 0, 40);
    const restored = memoryStorage();
    equal(restored.append(stream, 0, kept, []), "written", "the older entries");
    for (const collection of ["resellers", "wallets"]) {
      for (const record of source.find(collection, { limit: 10 })) {
        const unique = collection === "resellers" ? ["userId", "refid"] : [];
        equal(restored.put(collection, { ...record, version: 1 }, 0, unique), "written", collection);
      }
    }
    const cold = new Ally({ storage: restored });
    await fails(AllyError, "STORAGE_FAILED", () => cold.provision(r, 1));
    await fails(AllyError, "STORAGE_FAILED", () => cold.balance(r));
    equal(restored.read(stream, 0, 500).length, 40, "nothing appended");
    const audit = await cold.auditWallet(r);
    equal([audit.ok, audit.entries, audit.checkpoint.matches], [false, 40, false], "audit");
    still();
  });

  t("suspend, reactivate and deactivate govern provisioning", async () => {
    const ally = new Ally();
    const r = await ally.make().user(1).company("Partner").create();
    await ally.addCredits(r, 100);
    await ally.provision(r, 10, null, { idempotencyKey: "early" });
    const suspended = await ally.suspend(r, { reason: "chargeback review" });
    equal([suspended.status, suspended.statusReason], ["suspended", "chargeback review"], "suspended");
    equal((await ally.suspend(r.id, { reason: "chargeback review" })).version, suspended.version, "a repeat writes nothing");
    const e = await fails(AllyError, "RESELLER_INACTIVE", () => ally.provision(r, 1));
    equal([e.details.status, e.details.reason, e.details.reseller], ["suspended", "chargeback review", r.id], "details");
    await fails(AllyError, "RESELLER_INACTIVE", () => ally.provisionBulk(r, [{ cost: 1 }]));
    await fails(AllyError, "RESELLER_INACTIVE", () => ally.asReseller(r.id).provision(r.id, 1));
    equal((await ally.provision(r, 10, null, { idempotencyKey: "early" })).sequence, 2, "a replay is still answered");
    await ally.addCredits(r, 5);
    equal(await ally.balance(r), 95, "top-ups land, nothing was spent");
    const active = await ally.reactivate(r);
    equal([active.status, active.statusReason], ["active", null], "reactivated");
    equal((await ally.provision(r, 5)).balanceAfter, 90, "spends again");
    equal((await ally.deactivate(r)).status, "inactive", "closed");
    await fails(AllyError, "RESELLER_INACTIVE", () => ally.provision(r, 1));
    await fails(AllyError, "STATUS_TRANSITION_DENIED", () => ally.suspend(r));
    await fails(AllyError, "NOT_FOUND", () => ally.suspend("rs_nobody"));
    for (const bad of [5, null, {}, []]) await fails(AllyError, "INVALID_INPUT", () => ally.suspend(bad), `reseller ${String(bad)}`);
    for (const options of [{ why: "x" }, { reason: 5 }, { reason: "" }, { reason: "x".repeat(513) }, { reason: "a\u0000b" }, JSON.parse('{"__proto__": {"reason": "x"}}'), "reason", 5]) {
      await fails(AllyError, "INVALID_INPUT", () => ally.suspend(r, options), JSON.stringify(options));
    }
    equal((await ally.find(r.id)).status, "inactive", "nothing changed");
    equal(await ally.balance(r), 90, "balance unchanged");
    still();
  });

  t("money-path refusals: a huge sparse array, a clock past year 9999, a bulk crossing mailed once", async () => {
    await fails(AllyError, "INVALID_INPUT", () => validateLedger(new Array(15_000_000)));
    await fails(AllyError, "INVALID_INPUT", () => validateLedger(new Array(3)));
    still();
    let now = Date.UTC(2026, 2, 1);
    const storage = memoryStorage();
    const sent = [];
    const ally = new Ally({ storage, clock: () => now, mail: { send: (m) => void sent.push(m) } });
    const r = await ally.make().user(1).company("Mailed").email("ops@mailed.example").create();
    await ally.addCredits(r, 600);
    now = 253_402_300_800_000; // 10000-01-01
    const e = await fails(AllyError, "INVALID_CONFIG", () => ally.provision(r, 1));
    equal(e.details.key, "clock", "the clock is named");
    now = Date.UTC(2026, 2, 2);
    equal(await ally.balance(r), 600, "nothing was written");
    // 600 → 550 → 490 (the crossing) → 290: one mail, and the daily check adds none.
    const bulk = await ally.provisionBulk(r, [{ cost: 50 }, { cost: 60 }, { cost: 200 }]);
    equal(bulk.map((x) => x.balanceAfter), [550, 490, 290], "bulk");
    await ally.checkCredits();
    await new Ally({ storage, mail: { send: (m) => void sent.push(m) } }).checkCredits();
    equal(sent.map((m) => m.idempotencyKey), [`lowCredit:${r.id}:3`], "one mail, named by the debit that crossed");
  });

  t("asReseller of an unknown id is NOT_FOUND at its first call, whatever the call", async () => {
    const ally = new Ally();
    const known = await ally.make().user(1).company("Known").create();
    const ghost = ally.asReseller("rs_ghost");
    const calls = [
      () => ghost.balance("rs_ghost"),
      () => ghost.provision("rs_ghost", 1),
      () => ghost.reseller(),
      () => ghost.clients.getByReseller("rs_ghost"),
      () => ghost.clients.find("cl_none"),
      () => ghost.clients.make().name("Client").email("c@example.test").create(),
      () => ghost.analytics().creditTrends("2026-01-01", "2026-01-31"),
    ];
    for (const call of calls) await fails(AllyError, "NOT_FOUND", call, String(call));
    equal((await ally.asReseller(known).reseller()).id, known.id, "a known reseller's handle works");
    equal(await ally.clients.analytics().statusBreakdown(), { pending: 0, active: 0, suspended: 0, inactive: 0 }, "nothing was created");
  });

  t("memoryStorage() claims keys with the append and checks its arguments", async () => {
    const s = memoryStorage();
    equal(s.append("w", 0, ["a", "b"], [{ key: "k1", position: 0 }]), "written", "with a claim");
    equal(s.findClaim("w", "k1"), 0, "found");
    equal(s.findClaim("w", "k2"), null, "unknown");
    equal(s.append("w", 2, ["c"], [{ key: "k1", position: 2 }]), { claimed: "k1" }, "claimed already");
    equal(s.read("w", 0, 10), ["a", "b"], "nothing appended");
    for (const claims of [[{ key: 1, position: 0 }], [{ key: "k", position: -1 }], [{ key: "k", position: 0.5 }], [{ key: "k", position: 0, extra: 1 }], "k", [JSON.parse('{"key": "k", "position": 0, "__proto__": {}}')]]) {
      await fails(AllyError, "INVALID_INPUT", () => s.append("w", 2, ["c"], claims), JSON.stringify(claims));
    }
    await fails(AllyError, "INVALID_INPUT", () => s.findClaim(5, "k"));
    await fails(AllyError, "INVALID_INPUT", () => s.findClaim("w", null));
    equal(s.read("w", 0, 10), ["a", "b"], "still nothing appended");
  });

  t("a stale tail or a read that is a Proxy whose traps throw, or a revoked one, is STORAGE_FAILED and the wallet goes on", async () => {
    for (const failure of ["proxy", "revoked"]) {
      const host = hostStorage();
      const ally = new Ally({ storage: host });
      const r = await ally.make().user(1).company("Proxied").create();
      await ally.addCredits(r, 100);
      // Another instance appends, so this one's next append is stale and reads the tail.
      const other = new Ally({ storage: host });
      await other.provision(r, 5);
      host.failNext("append", failure);
      await fails(AllyError, "STORAGE_FAILED", () => ally.provision(r, 10), `append ${failure}`);
      host.failNext("append", null);
      const fresh = new Ally({ storage: host });
      host.failNext("read", failure);
      await fails(AllyError, "STORAGE_FAILED", () => fresh.balance(r), `read ${failure}`);
      host.failNext("read", null);
      equal(await fresh.balance(r), 95, `${failure}: nothing spent by the failed calls`);
      equal((await ally.provision(r, 10)).balanceAfter, 85, `${failure}: the instance keeps working`);
    }
  });

  for (const failure of ["throw", "reject", "garbage", "proxy", "revoked"]) {
    t(`a findClaim that ${failure}s is STORAGE_FAILED and spends nothing`, async () => {
      const host = hostStorage({ async: failure === "reject" });
      const ally = new Ally({ storage: host });
      const r = await ally.make().user(1).company("Keys").create();
      await ally.addCredits(r, 100);
      await ally.provision(r, 10, null, { idempotencyKey: "k" });
      host.failNext("findClaim", failure);
      await fails(AllyError, "STORAGE_FAILED", () => ally.provision(r, 10, null, { idempotencyKey: "k" }));
      host.failNext("findClaim", null);
      equal(await ally.balance(r), 90, "spent once");
      equal((await ally.provision(r, 10, null, { idempotencyKey: "k" })).sequence, 2, "answered once the storage answers");
    });
  }

  t("attestWallet signs the balance; verifyAttestation checks it without the history", async () => {
    const key = "k".repeat(32);
    const ally = new Ally();
    const r = await ally.make().user(1).company("Attested").create();
    await ally.addCredits(r, 900);
    await ally.provision(r, 150);
    const signed = await ally.attestWallet(r, key);
    const [last] = await ally.transactions(r, { limit: 1 });
    equal([signed.version, signed.walletId, signed.length, signed.balance, signed.head], [1, r.id, 2, 750, last.hash], "the current state");
    ok(/^[0-9a-f]{64}$/.test(signed.signature), "a hex HMAC");
    const now = Date.parse(signed.issuedAt) + 5_000;
    const good = verifyAttestation(signed, key, { maxAgeMs: 60_000, walletId: r.id, now });
    equal([good.valid, good.reason, good.balance, good.ageMs], [true, null, 750, 5_000], "valid");
    equal(verifyAttestation(signed, new TextEncoder().encode(key), { maxAgeMs: 60_000, walletId: r.id, now: new Date(now) }).valid, true, "the key as bytes, now as a Date");
    const refusals = [
      [{ ...signed, balance: 7_500 }, key, {}, "SIGNATURE_MISMATCH"],
      [signed, "x".repeat(32), {}, "SIGNATURE_MISMATCH"],
      [signed, key, { walletId: "rs_other" }, "WALLET_MISMATCH"],
      [signed, key, { now: now + 120_000 }, "EXPIRED"],
      [signed, key, { now: now - 3_600_000 }, "ISSUED_IN_FUTURE"],
    ];
    for (const [attestation, k, extra, reason] of refusals) {
      const v = verifyAttestation(attestation, k, { maxAgeMs: 60_000, walletId: r.id, now, ...extra });
      equal([v.valid, v.reason], [false, reason], reason);
    }
    const w = r.id;
    const bad = [
      () => verifyAttestation(signed, key, { maxAgeMs: 1 }),
      () => verifyAttestation(signed, "short", { maxAgeMs: 1, walletId: w }),
      () => verifyAttestation(signed, 42, { maxAgeMs: 1, walletId: w }),
      () => verifyAttestation(signed, key, { walletId: w }),
      () => verifyAttestation(signed, key, { maxAgeMs: 0, walletId: w }),
      () => verifyAttestation(signed, key, { maxAgeMs: NaN, walletId: w }),
      () => verifyAttestation(signed, key, { maxAgeMs: 1.5, walletId: w }),
      () => verifyAttestation(signed, key, { maxAgeMs: 31 * 86_400_000, walletId: w }),
      () => verifyAttestation(signed, key, { maxAgeMs: 1, walletId: w, colour: "red" }),
      () => verifyAttestation(signed, key, JSON.parse(`{"maxAgeMs": 1, "walletId": "${w}", "__proto__": {}}`)),
      () => verifyAttestation(signed, key, { maxAgeMs: 1, walletId: w, now: "yesterday" }),
      () => verifyAttestation({ ...signed, extra: 1 }, key, { maxAgeMs: 1, walletId: w }),
      () => verifyAttestation({ ...signed, head: "00" }, key, { maxAgeMs: 1, walletId: w }),
      () => verifyAttestation({ ...signed, balance: 1.5 }, key, { maxAgeMs: 1, walletId: w }),
      () => verifyAttestation({ ...signed, version: 2 }, key, { maxAgeMs: 1, walletId: w }),
      () => verifyAttestation(null, key, { maxAgeMs: 1, walletId: w }),
    ];
    for (const call of bad) await fails(AllyError, "INVALID_INPUT", call, String(call));
    await fails(AllyError, "INVALID_INPUT", () => ally.attestWallet(r, "short"));
    await fails(AllyError, "NOT_FOUND", () => ally.attestWallet("rs_none", key));
    await ally.suspend(r);
    await fails(AllyError, "RESELLER_INACTIVE", () => ally.attestWallet(r, key));
    still();
  });

  t("a host storage without findClaim is refused when the engine is made", () => {
    const { findClaim, ...partial } = hostStorage();
    void findClaim;
    let thrown;
    try {
      new Ally({ storage: partial });
    } catch (e) {
      thrown = e;
    }
    ok(thrown instanceof AllyError && thrown.code === "INVALID_CONFIG" && thrown.details.key === "storage.findClaim", `${thrown?.code} ${thrown?.details?.key}`);
  });
}
