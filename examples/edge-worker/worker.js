// A Cloudflare Worker in front of the provisioning API: before a request reaches the origin it
// re-prices the quote the browser posted (refusing a tampered one), checks the wallet's balance,
// and checks that the balance covers the quote. The balance comes either from a wallet
// attestation the origin signed with the shared key (`ally.attestWallet`: no history needed,
// at most a minute old), or from the wallet's whole history, audited here.
//
// POST /provision  { quote, walletId, attestation }   or   { quote, walletId, ledger }
//   200 { accepted: true, total, balance, balanceAfter, fingerprint }
//   400 { code, message }                     malformed request (AllyError from the package)
//   402 { refused: "INSUFFICIENT_CREDITS" }   the balance does not cover the quote
//   409 { refused: "QUOTE_TAMPERED" | "LEDGER_INVALID" | "ATTESTATION_INVALID", … }
//
// env.ATTESTATION_KEY: the key the origin signs attestations with (a secret binding).
import { Catalog, verifyQuote, validateLedger, verifyAttestation, AllyError } from "ally-engine";
import { PRODUCTS } from "./catalog.js";


let catalog;
/** How old an attestation may be: the balance it states is at most this stale. */
const ATTESTATION_AGE_MAX_MS = 60_000;

/** The wallet's balance from the request, or the refusal to answer with. */
function balanceOf({ attestation, ledger, walletId }, env) {
  if (attestation !== undefined) {
    const verdict = verifyAttestation(attestation, env.ATTESTATION_KEY, { maxAgeMs: ATTESTATION_AGE_MAX_MS, walletId });
    if (!verdict.valid) return { refusal: { refused: "ATTESTATION_INVALID", reason: verdict.reason } };
    return { balance: verdict.balance };
  }
  const audit = validateLedger(ledger, { walletId });
  if (!audit.ok) return { refusal: { refused: "LEDGER_INVALID", violations: audit.violations } };
  return { balance: audit.balance };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/provision") {
      return Response.json({ message: "POST /provision" }, { status: 404 });
    }
    catalog ??= new Catalog(PRODUCTS);
    let body;
    try {
      body = await request.json();
    } catch {
      return Response.json({ code: "INVALID_INPUT", message: "the body is not JSON" }, { status: 400 });
    }
    try {
      const { quote } = body ?? {};
      const verdict = verifyQuote(quote, catalog);
      if (!verdict.valid) {
        return Response.json({ refused: "QUOTE_TAMPERED", mismatches: verdict.mismatches }, { status: 409 });
      }
      const { balance, refusal } = balanceOf(body, env);
      if (refusal) return Response.json(refusal, { status: 409 });
      if (balance < quote.total) {
        return Response.json({ refused: "INSUFFICIENT_CREDITS", balance, total: quote.total }, { status: 402 });
      }
      return Response.json({
        accepted: true,
        total: quote.total,
        balance,
        balanceAfter: balance - quote.total,
        fingerprint: verdict.fingerprint,
      });
    } catch (error) {
      if (error instanceof AllyError) {
        return Response.json({ code: error.code, message: error.message, details: error.details }, { status: 400 });
      }
      throw error;
    }
  },
};
