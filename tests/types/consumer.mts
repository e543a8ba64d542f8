// Compiled with `tsc --strict --noEmit`: proves the generated declarations are precise enough to
// catch misuse (each @ts-expect-error must be an error) and complete enough for real use.
import {
  Ally, AllyError, Catalog, memoryStorage, quote, tierCost, tierCostBatch, verifyQuote,
  type AllyErrorCode, type AllyStorage, type MaybePromise, type ProductInput, type Quote,
  type Reseller, type StoredRecord, type WriteOutcome, type AppendOutcome, type StreamClaim,
  type WalletAudit,
} from "ally-engine";
import initAlly, { tierCost as webTierCost } from "ally-engine/web";
import * as pricing from "ally-engine/pricing";

const edgeCost: number = pricing.tierCost(1000, "gold");
const edgeQuote: Quote = pricing.quote({ tier: "gold", lines: [{ sku: "basic", quantity: 1 }] }, new pricing.Catalog([{ sku: "basic", name: "Basic", basePrice: 1000 }]));
// @ts-expect-error the pricing module has no engine
void pricing.Ally;

const cost: number = tierCost(1000, "platinum");
const bigCost: number = tierCost(1000n, "gold", { rounding: "halfEven", tiers: { silver: { discount: "0.1" } } });
const costs: Float64Array = tierCostBatch(new Float64Array([1, 2]), "gold");
// @ts-expect-error a tier is a name
tierCost(1000, 5);
// @ts-expect-error rounding modes are a closed set
tierCost(1000, "gold", { rounding: "nearest" });
// @ts-expect-error options are a closed record
tierCost(1000, "gold", { colour: "red" });

const products: ProductInput[] = [
  { sku: "basic", name: "Basic", basePrice: 1000 },
  { sku: "seats", name: "Seats", pricing: "graduated", bands: [{ upTo: 10, unitPrice: 100, flatFee: 500 }, { upTo: null, unitPrice: 80 }] },
  { sku: "calls", name: "API calls", pricing: "package", packageSize: 100, packagePrice: 500, freeUnits: 100 },
];
const catalog = new Catalog(products);
const q: Quote = quote({ tier: "gold", lines: [{ sku: "basic", quantity: 2 }] }, catalog);
const lineTotal: number | undefined = q.lines[0]?.total;
const money: string = q.totalMoney;
const valid: boolean = verifyQuote(q, products).valid;
const packages: number | undefined = q.lines[0]?.packages;
const flatFee: number | undefined = q.lines[0]?.bands[0]?.flatFee;
// @ts-expect-error package pricing is a closed set of models
new Catalog([{ sku: "x", name: "X", pricing: "stairstep", packageSize: 10 }]);
// @ts-expect-error a quantity is a number
quote({ tier: "gold", lines: [{ sku: "basic", quantity: "2" }] }, catalog);

const storage: AllyStorage = {
  get: (_collection: string, _id: string): StoredRecord | null => null,
  find: async () => [],
  put: (): MaybePromise<WriteOutcome> => Promise.resolve({ duplicate: "userId" }),
  append: (_stream: string, _expected: number, _entries: string[], claims: StreamClaim[]): AppendOutcome =>
    claims.length > 1 ? { claimed: claims[0]!.key } : "written",
  read: () => [],
  findClaim: async (_stream: string, _key: string) => null,
};

async function main(): Promise<void> {
  const ally = new Ally({ storage: memoryStorage(), clock: () => new Date(), config: { lowCreditThreshold: 500, currency: "USD" } });
  new Ally({ storage, mail: { send: async () => undefined } });
  new Ally();
  const r: Reseller = await ally.make().user(1).company("Elite Global").email("ops@elite.example").platinum().create();
  const tier: string = r.tier;
  const status: "active" | "suspended" | "inactive" = r.status;
  const found: Reseller | null = await ally.findByRefid(r.refid);
  const suspended: Reseller = await ally.suspend(r, { reason: "chargeback" });
  const reason: string | null = suspended.statusReason;
  await ally.reactivate(r.id);
  await ally.deactivate(r);
  const audited: WalletAudit = await ally.auditWallet(r);
  const covered: number | undefined = audited.checkpoint?.length;
  // @ts-expect-error suspend takes a reason only
  await ally.suspend(r, { why: "x" });
  const paid: number = await ally.calculateTierCost(r, 1000);
  await ally.updateMetadata(r.id, "hold_provisioning", true);
  await ally.updateMetadata(r, "hold_provisioning");
  const listed: Reseller[] = await ally.list({ tier: "gold", status: "active" });
  // @ts-expect-error statuses are a closed set
  await ally.list({ status: "asleep" });
  // @ts-expect-error config keys are checked
  new Ally({ config: { colour: "red" } });
  try {
    tierCost(1.5, "gold");
  } catch (e) {
    if (e instanceof AllyError) {
      const code: AllyErrorCode = e.code;
      const status: 400 | 402 | 403 | 404 | 409 | 422 | 500 | 502 | 503 = e.httpStatus;
      // The code narrows the details.
      if (e.code === "INSUFFICIENT_CREDITS") {
        const balance: number = e.details.balance;
        const items: readonly string[] | undefined = e.details.items;
        void balance, items;
      } else if (e.code === "INVALID_INPUT") {
        const field: string = e.details.field;
        // @ts-expect-error: INVALID_INPUT has no balance
        void e.details.balance;
        void field;
      } else if (e.code === "CONFLICT") {
        const attempts: number = e.details.attempts;
        void attempts;
      }
      console.log(code, status, e.message, e.name === "AllyError");
    }
  }
  await initAlly();
  console.log(edgeCost, edgeQuote, cost, bigCost, costs, lineTotal, money, packages, flatFee, valid, tier, status, found, paid, listed, webTierCost(1, "gold"));
}
void main;

// Wallets: entries, bulk items, events and the audit are precisely typed.
{
  const { Ally, validateLedger } = await import("ally-engine");
  const ally = new Ally();
  const entry: import("ally-engine").LedgerEntry = await ally.provision("rs_x", 200, "Issue Pro License", { idempotencyKey: "k1" });
  const kind: "credit" | "debit" = entry.kind;
  const bulk: import("ally-engine").LedgerEntry[] = await ally.provisionBulk("rs_x", [{ cost: 1 }, { cost: 2n, memo: "m" }]);
  const off: () => void = ally.on("lowCredit", (event) => {
    const balance: number = event.balance;
    const company: string = event.reseller.companyName;
    void balance, company;
  });
  ally.on("listenerError", async (event) => void event.error);
  // @ts-expect-error: unknown events are refused
  ally.on("highCredit", () => {});
  // @ts-expect-error: a scoped handle has no addCredits
  ally.asReseller("rs_x").addCredits("rs_x", 5);
  const audit = validateLedger(await ally.ledger("rs_x"), { walletId: "rs_x" });
  const bytes: Uint8Array = await ally.exportLedger("rs_x");
  const fromBytes: boolean = validateLedger(bytes).ok;
  // @ts-expect-error: a string is neither entries nor bytes
  validateLedger("[]");
  const code: import("ally-engine").LedgerViolationCode | undefined = audit.violations[0]?.code;
  const report: import("ally-engine").CreditCheckReport = await ally.checkCredits(new Date());
  void kind, bulk, off, code, report, fromBytes;
}

// Commissions: plans, payments (objects or columns) and the run are precisely typed.
{
  const { commission } = await import("ally-engine");
  const hierarchy: import("ally-engine").CommissionHierarchy = {
    resellers: [{ id: "top", commissionRate: "0.10" }, { id: "abc", parentId: "top", commissionRate: 0.15, status: "approved" }],
    customers: [{ id: "c1", resellerId: "abc", since: new Date() }],
  };
  const run = commission({ overrides: ["0.05"], holdDays: 14 }, [{ customerId: "c1", amount: "200.00", at: "2026-01-05" }], hierarchy, { start: "2026-01-01", end: "2026-02-01" });
  const total: string | undefined = run.resellers[0]?.total;
  const eligible: boolean | undefined = run.resellers[0]?.payoutEligible;
  const columns: import("ally-engine").PaymentColumns = { customer: new Uint32Array(1), amountMinor: new Float64Array([20000]), at: new Float64Array([Date.now()]) };
  const packed = commission({}, columns, { ...hierarchy, customers: { reseller: new Uint32Array([1]) } }, { start: 0, end: Date.now(), lines: "columns" });
  const lineCount: number = packed.lineCount;
  // @ts-expect-error: the period is required
  commission({}, columns, hierarchy);
  // @ts-expect-error: an unknown base rule
  commission({ base: "magic" }, columns, hierarchy, { start: 0, end: 1 });
  void total, eligible, lineCount;
}

// Applications and the hierarchy.
{
  const { Ally } = await import("ally-engine");
  const ally = new Ally({ config: { hierarchyLevelsMax: 4 } });
  const app: import("ally-engine").ResellerApplication = await ally.applications.submit({
    name: "Ada", email: "ada@abc.example", phone: "555 0100", businessName: "ABC", businessAddress: "1 Main St",
    businessType: "company", expectedCustomers: 10, termsAccepted: true,
  });
  const { reseller } = await ally.applications.approve(app.id, { commissionRate: "0.15", approvedBy: "admin" });
  const rate: string | null = reseller.commissionRate;
  const moved = await ally.setParent(reseller, null);
  const parent: string | null = moved.parentId;
  const pending: import("ally-engine").ResellerApplication[] = await ally.applications.list({ status: "pending" });
  // @ts-expect-error: the business type is one of two
  await ally.applications.submit({ ...app, businessType: "empire", termsAccepted: true });
  void rate, parent, pending, (await ally.children(reseller)).length, (await ally.setCommissionRate(reseller, 0.1)).version;
}

// Clients and permissions.
{
  const { Ally } = await import("ally-engine");
  const ally = new Ally({ config: { clientRefidPrefix: "CL-" } });
  const client: import("ally-engine").Client = await ally.clients.make().name("Acme").email("it@acme.example").reseller("rs_x").metadata({ plan: "fiber" }).create();
  const status: import("ally-engine").ClientStatus = (await ally.clients.activate(client)).status;
  const mine: boolean = await ally.canManageChildAccount("rs_x", client);
  const found: import("ally-engine").Client | null = await ally.clients.findByRefid(client.refid);
  // @ts-expect-error: a client is not a reseller's builder
  ally.clients.make().company("Acme");
  void status, mine, found, (await ally.clients.getByReseller("rs_x")).length;
}

// Payments and the reference reports.
{
  const { Ally } = await import("ally-engine");
  const ally = new Ally();
  const paid: import("ally-engine").PaymentRecord = await ally.payments.record({ clientId: "cl_x", amount: "200.00", at: new Date(), kind: "payment" });
  const revenue: import("ally-engine").ChildAccountsRevenue = await ally.calculateChildAccountsRevenue("rs_x", "2026-01-01", new Date());
  const report: import("ally-engine").CommissionReport = await ally.commissionReport("rs_x", "2026-01-01", "2026-02-01");
  const all = await ally.allResellersCommission("2026-01-01", "2026-02-01");
  const first: string | undefined = all[0]?.resellerName;
  // @ts-expect-error: a payment needs a client
  await ally.payments.record({ amount: "1.00", at: "2026-01-01" });
  void paid, revenue.breakdown, report.summary.commissionRate, first;
}

// Recorded commission: runs, balances, payouts and reconciliation.
{
  const { Ally } = await import("ally-engine");
  const ally = new Ally({ config: { commissionPlan: { holdDays: 30, minimumPayout: "50.00" } } });
  const phases: string[] = [];
  const run: import("ally-engine").CommissionRunSummary = await ally.commissions.process("2026-01-01", new Date(), {
    onProgress: (p: import("ally-engine").CommissionProgress) => phases.push(p.phase),
  });
  const lines: import("ally-engine").CommissionRecord[] = await ally.commissions.lines({ status: "approved", reseller: "rs_x" });
  const balance: import("ally-engine").CommissionBalance = await ally.commissions.balance("rs_x");
  const withheld: import("ally-engine").WithheldReason | null = balance.withheld;
  const advance: import("ally-engine").CommissionPaymentRecord = await ally.payCommission("rs_x", "750.00", "Commission for January 2026");
  const batch: import("ally-engine").PayoutBatch = await ally.commissions.createPayoutBatch({ description: "January" });
  const again: import("ally-engine").PayoutBatch = await ally.commissions.batch(batch.id);
  const report: import("ally-engine").Reconciliation = await ally.reconcile("2026-01-01", "2026-02-01");
  const kind: "missing" | "unexpected" | "changed" | undefined = report.discrepancies[0]?.kind;
  // @ts-expect-error: statuses are the four documented ones
  await ally.commissions.lines({ status: "lost" });
  void run.total, lines.length, withheld, advance.paymentMethod, again.payouts, kind, (await ally.commissions.batches()).length;
}

// Partner health.
{
  const { healthScore, healthScoreBatch } = await import("ally-engine");
  const one: import("ally-engine").HealthScore = healthScore({ revenue: "7500.00", newCustomers: 6, retentionRate: "0.88" }, { missing: "reweight", previous: { score: "68.20", band: "atRisk" } });
  const band: import("ally-engine").HealthBand = one.band;
  const parts: string[] = one.components.map((c) => c.contribution);
  const batch: import("ally-engine").HealthBatch = healthScoreBatch({ revenue: new Float64Array([7500]), activeDays: new Float64Array([NaN]) });
  const scores: Uint16Array = batch.score;
  // @ts-expect-error: the policy is one of three
  healthScore({}, { missing: "guess" });
  void band, parts, scores;
}

// Analytics, fluent, and a reseller's own view.
{
  const { Ally } = await import("ally-engine");
  const ally = new Ally();
  const trends: import("ally-engine").Trend = await ally.analytics().monthly().forReseller("rs_x").creditTrends("2026-01-01", new Date());
  const snapshot: Record<string, number> = await ally.analytics().tierSnapshot();
  const top: import("ally-engine").TopReseller[] = await ally.analytics().topResellers(5, "2026-01-01", "2026-01-31");
  const outstanding: number = await ally.analytics().totalCreditsDistributed();
  const stats: import("ally-engine").ResellerStats = await ally.analytics().resellerStats("rs_x");
  const interval: import("ally-engine").AnalyticsInterval = ally.analytics().daily().interval;
  const clients = ally.clients.analytics().forReseller("rs_x");
  const breakdown: Record<import("ally-engine").ClientStatus, number> = await clients.statusBreakdown();
  const segments: import("ally-engine").ClientSegmentation = await clients.segmentation();
  const signups: import("ally-engine").Trend = await clients.yearly().signupTrends("2020-01-01", "2026-12-31");
  const growth: number = await clients.growth();
  const mine = ally.asReseller("rs_x");
  const own: import("ally-engine").Client[] = await mine.clients.getByReseller("rs_x");
  const ownByDefault: import("ally-engine").Client[] = await mine.clients.getByReseller();
  // A reseller's handle: its own reseller by default, or named by id or refid.
  const written: import("ally-engine").WrittenEntry = await mine.provision(200, "Issue Pro License", { idempotencyKey: "k2" });
  const replayed: boolean = written.replayed;
  await mine.provision("RS-XXXX", 1n);
  const ownBulk: import("ally-engine").WrittenEntry[] = await mine.provisionBulk([{ cost: 1 }], { idempotencyKey: "k3" });
  const ownBalance: number = await mine.balance();
  const ownPage: import("ally-engine").LedgerEntry[] = await mine.transactions({ limit: 5 });
  await mine.transactions("rs_x", { before: 10 });
  await mine.transactions({ since: new Date(), until: "2026-12-31", limit: 5 });
  const ownLedger: import("ally-engine").LedgerEntry[] = await mine.ledger();
  // @ts-expect-error: a provision needs a cost
  await mine.provision("memo only");
  // @ts-expect-error: items are an array
  await mine.provisionBulk({ cost: 1 });
  const byKey: import("ally-engine").LedgerEntry[] = await mine.findByIdempotencyKey("k2");
  const observed = new Ally({ onEvent: (event: import("ally-engine").AllyEvent) => void [event.name, event.duration, event.attributes["ally.storage.outcome"]] });
  void observed;
  await ally.findByIdempotencyKey("rs_x", "k2");
  void ownByDefault, replayed, ownBulk, ownBalance, ownPage, ownLedger, byKey;
  const ownTrend: import("ally-engine").Trend = await mine.analytics().daily().creditTrends("2026-01-01", "2026-01-31");
  // @ts-expect-error: a trend needs its period
  await ally.analytics().creditTrends();
  void trends, snapshot, top[0]?.creditVolume, outstanding, stats.clients.total, interval, breakdown.active, segments.resold.percentage, signups, growth, own, ownTrend;
}

// Partner health through the engine.
{
  const { Ally } = await import("ally-engine");
  const ally = new Ally();
  const off = ally.on("healthAlert", (e: import("ally-engine").HealthAlertEvent) => { void e.alert.band, e.notification; });
  const recorded: import("ally-engine").RecordedHealth = await ally.health.record("rs_x", { revenue: "7500.00" }, { period: "2026-11", options: { missing: "zero" } });
  const alert: import("ally-engine").HealthAlert | null = recorded.alert;
  const history: import("ally-engine").HealthRecord[] = await ally.health.history("rs_x");
  const open: import("ally-engine").HealthAlert[] = await ally.health.alerts({ status: "open" });
  const acknowledged = await ally.health.openIntervention(open[0]!, { note: "Call booked", openedBy: "am" });
  const status: import("ally-engine").HealthAlertStatus = (await ally.health.closeIntervention(acknowledged, { outcome: "Done", closedBy: "am" })).status;
  // @ts-expect-error: the engine supplies the previous score
  await ally.health.record("rs_x", {}, { options: { previous: { score: 50 } } });
  off();
  void alert, history.length, status;
}

// Onboarding and lifecycle.
{
  const { Ally } = await import("ally-engine");
  const ally = new Ally({ config: { onboarding: [{ key: "kickoff", title: "Kick-off call" }], lifecycle: [{ key: "trial", title: "Trial", next: ["paid"] }, { key: "paid", title: "Paid" }] } });
  const progress: import("ally-engine").OnboardingProgress = await ally.onboarding.complete("rs_x", "kickoff", { by: "ops" });
  const stage: import("ally-engine").ClientLifecycle = await ally.clients.moveTo("cl_x", "paid");
  const own: import("ally-engine").ClientLifecycle = await ally.asReseller("rs_x").clients.lifecycle("cl_x");
  void progress.progress, stage.next, own.history, (await ally.onboarding.progress("rs_x")).tasks[0]?.available, (await ally.onboarding.reopen("rs_x", "kickoff")).done;
}

// PostgreSQL: on a pool, or on a client inside the host's own transaction.
{
  const { postgresStorage, setupPostgres, SCHEMA_VERSION } = await import("ally-engine/postgres");
  const answer = async () => ({ rows: [], rowCount: 0 });
  const pool = { totalCount: 0, query: answer, connect: async () => ({ query: answer, release() {} }) };
  const outcome: import("ally-engine/postgres").SetupOutcome = await setupPostgres(pool, { schema: "ally" });
  const client = await pool.connect();
  const unit: import("ally-engine").AllyStorage = postgresStorage(client, { schema: "ally" });
  // @ts-expect-error: a schema is a string
  postgresStorage(pool, { schema: 5 });
  void outcome.applied, SCHEMA_VERSION, unit;
}
