// The edge example (examples/edge-worker) in a real workerd on loopback: a genuine request passes;
// a tampered quote, a forged ledger, a balance that does not cover the quote and a malformed body
// are refused with the right status.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Ally, Catalog } from "ally-engine";
import { Checks } from "../js/harness.mjs";
import { fetchWhenUp, glueModules, startWorkerd } from "../js/loopback.mjs";
import { PRODUCTS } from "../../examples/edge-worker/catalog.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const pkg = JSON.parse(readFileSync(join(root, "pkg/package.json"), "utf8"));
const modules = [
  ["worker.js", "esModule", join(root, "examples/edge-worker/worker.js")],
  ["catalog.js", "esModule", join(root, "examples/edge-worker/catalog.js")],
  ["ally-engine", "esModule", join(root, "pkg", pkg.exports["."].workerd.default)],
  ["web/ally_engine.js", "esModule", join(root, "pkg/web/ally_engine.js")],
  ...glueModules("web/ally_engine.js", join(root, "pkg/web/ally_engine.js")),
  ["ally_engine_bg.wasm", "wasm", join(root, "pkg/ally_engine_bg.wasm")],
];
const ATTESTATION_KEY = "edge-and-origin-share-this-32-byte-secret";
const workerd = await startWorkerd({ work: join(root, "target", "edge-worker"), modules, bindings: { ATTESTATION_KEY } });
const checks = new Checks("edge");
try {
  const post = async (body) => {
    const init = { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) };
    const response = await fetchWhenUp(`http://127.0.0.1:${workerd.port}/provision`, init);
    return { status: response.status, body: await response.json() };
  };
  // The origin's side: a gold reseller with a real ledger, and a quote priced by the same module.
  const ally = new Ally();
  const r = await ally.make().user(1).company("Edge Partners").gold().create();
  await ally.addCredits(r, 20_000, { memo: "wire" });
  await ally.provision(r, 1_500, "earlier order");
  const ledger = await ally.ledger(r);
  const catalog = new Catalog(PRODUCTS);
  const quote = ally.quote({ tier: "gold", lines: [{ sku: "pro", quantity: 2 }, { sku: "seats", quantity: 12 }] }, catalog);
  const ok = await post({ quote, ledger, walletId: r.id });
  checks.check("a genuine request passes", ok.status === 200 && ok.body.accepted === true, JSON.stringify(ok));
  checks.check("the worker's numbers are the origin's", ok.body.total === quote.total && ok.body.balance === 18_500 && ok.body.balanceAfter === 18_500 - quote.total, JSON.stringify(ok.body));
  const tampered = await post({ quote: { ...quote, total: 1 }, ledger, walletId: r.id });
  checks.check("a tampered quote is refused", tampered.status === 409 && tampered.body.refused === "QUOTE_TAMPERED", JSON.stringify(tampered));
  const forged = structuredClone(ledger);
  forged[0].amount = 200_000;
  forged[0].balanceAfter = 200_000;
  const forgedAnswer = await post({ quote, ledger: forged, walletId: r.id });
  checks.check(
    "a forged ledger is refused, naming the broken hash chain",
    forgedAnswer.status === 409 && forgedAnswer.body.violations?.some((v) => v.code === "HASH_MISMATCH"),
    JSON.stringify(forgedAnswer.body),
  );
  const big = ally.quote({ tier: "gold", lines: [{ sku: "pro", quantity: 5 }] }, catalog);
  const poor = await post({ quote: big, ledger, walletId: r.id });
  checks.check("a quote the balance does not cover is refused", poor.status === 402 && poor.body.refused === "INSUFFICIENT_CREDITS", JSON.stringify(poor));
  const other = await post({ quote, ledger, walletId: "rs_someone_else" });
  checks.check("another wallet's ledger is refused", other.status === 409 && other.body.violations?.[0]?.code === "WALLET_MISMATCH", JSON.stringify(other.body));
  // The same request with a signed attestation instead of the history.
  const attestation = await ally.attestWallet(r, ATTESTATION_KEY);
  const attested = await post({ quote, attestation, walletId: r.id });
  checks.check("an attested balance passes without the history", attested.status === 200 && attested.body.balance === 18_500 && attested.body.balanceAfter === 18_500 - quote.total, JSON.stringify(attested));
  const inflated = await post({ quote: big, attestation: { ...attestation, balance: 1_000_000 }, walletId: r.id });
  checks.check("an attestation with a forged balance is refused", inflated.status === 409 && inflated.body.refused === "ATTESTATION_INVALID" && inflated.body.reason === "SIGNATURE_MISMATCH", JSON.stringify(inflated));
  const elsewhere = await post({ quote, attestation, walletId: "rs_someone_else" });
  checks.check("another wallet's attestation is refused", elsewhere.status === 409 && elsewhere.body.reason === "WALLET_MISMATCH", JSON.stringify(elsewhere));
  const past = new Ally({ clock: () => Date.now() - 3_600_000 });
  const old = await past.make().user(2).company("Old").create();
  await past.addCredits(old, 50_000);
  const stale = await post({ quote, attestation: await past.attestWallet(old, ATTESTATION_KEY), walletId: old.id });
  checks.check("an attestation older than a minute is refused", stale.status === 409 && stale.body.reason === "EXPIRED", JSON.stringify(stale));
  const otherKey = await post({ quote, attestation: await ally.attestWallet(r, "a-key-the-edge-does-not-hold-000000"), walletId: r.id });
  checks.check("an attestation signed with another key is refused", otherKey.status === 409 && otherKey.body.reason === "SIGNATURE_MISMATCH", JSON.stringify(otherKey));
  const poorAttested = await post({ quote: big, attestation, walletId: r.id });
  checks.check("an attested balance that does not cover the quote is refused", poorAttested.status === 402, JSON.stringify(poorAttested));
  const unnamed = await post({ quote, attestation });
  checks.check("an attestation without the wallet it is for is refused", unnamed.status === 400 && unnamed.body.code === "INVALID_INPUT", JSON.stringify(unnamed));
  const malformed = await post({ quote, attestation: { ...attestation, head: 5 }, walletId: r.id });
  checks.check("a malformed attestation is INVALID_INPUT", malformed.status === 400 && malformed.body.code === "INVALID_INPUT", JSON.stringify(malformed));
  const garbage = await post("{not json");
  checks.check("a malformed body is a 400", garbage.status === 400, JSON.stringify(garbage));
  const wrong = await post({ quote, ledger: "nope", walletId: r.id });
  checks.check("a ledger of the wrong type is INVALID_INPUT", wrong.status === 400 && wrong.body.code === "INVALID_INPUT", JSON.stringify(wrong));
} catch (error) {
  checks.crashed(error);
} finally {
  workerd.stop();
}
process.exit(checks.close());
