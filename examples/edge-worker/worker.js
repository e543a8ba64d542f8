// A Cloudflare Worker in front of the provisioning API: before a request reaches the origin it
// re-prices the quote the browser posted (refusing a tampered one), audits the wallet history it
// is handed (refusing a forged one), and checks that the balance covers the quote.
//
// POST /provision  { quote, ledger, walletId }
//   200 { accepted: true, total, balance, balanceAfter, fingerprint }
//   400 { code, message }                     malformed request (AllyError from the package)
//   402 { refused: "INSUFFICIENT_CREDITS" }   the balance does not cover the quote
//   409 { refused: "QUOTE_TAMPERED" | "LEDGER_INVALID", … }
import { Catalog, verifyQuote, validateLedger, AllyError } from "ally-engine";
import { PRODUCTS } from "./catalog.js";


let catalog;

export default {
  async fetch(request) {
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
      const { quote, ledger, walletId } = body ?? {};
      const verdict = verifyQuote(quote, catalog);
      if (!verdict.valid) {
        return Response.json({ refused: "QUOTE_TAMPERED", mismatches: verdict.mismatches }, { status: 409 });
      }
      const audit = validateLedger(ledger, { walletId });
      if (!audit.ok) {
        return Response.json({ refused: "LEDGER_INVALID", violations: audit.violations }, { status: 409 });
      }
      if (audit.balance < quote.total) {
        return Response.json({ refused: "INSUFFICIENT_CREDITS", balance: audit.balance, total: quote.total }, { status: 402 });
      }
      return Response.json({
        accepted: true,
        total: quote.total,
        balance: audit.balance,
        balanceAfter: audit.balance - quote.total,
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
