// The engine form of the monthly commission run, in a process of its own so that its peak memory
// is its own: 100 000 payments stored in the in-memory default storage (1 000 resellers in three
// levels, 10 000 clients), then one `commissions.process` of the month, then the same run again
// (which records nothing). Prints JSON: seconds of each run, the lines recorded, and the peak
// resident memory of the process before and after the runs (MB).
import { Ally } from "ally-engine";

const PAYMENTS = Number(process.env.PAYMENTS ?? 100_000);
const RESELLERS = 1_000;
const CLIENTS = 10_000;
let now = Date.UTC(2026, 0, 1);
const ally = new Ally({ clock: () => new Date(now), config: { commissionPlan: { overrides: ["0.05", "0.02"], holdDays: 14 } } });
const resellers = [];
for (let i = 0; i < RESELLERS; i++) {
  const r = await ally.make().user(i + 1).company(`Reseller ${i}`).create();
  await ally.setCommissionRate(r, (1000 + (i % 6) * 100) / 10_000);
  if (i >= 10) await ally.setParent(r, resellers[i < 100 ? i % 10 : 10 + (i % 90)]);
  resellers.push(r);
}
const clients = [];
for (let c = 0; c < CLIENTS; c++) clients.push((await ally.clients.make().name(`Client ${c}`).reseller(resellers[(c * 7) % RESELLERS]).create()).id);
const JAN = Date.UTC(2026, 0, 1);
for (let i = 0; i < PAYMENTS; i++) {
  await ally.payments.record({ id: `p${i}`, clientId: clients[(i * 31) % CLIENTS], amount: `${10 + Math.floor((i % 5000) / 100)}.${String(i % 100).padStart(2, "0")}`, at: JAN + i * 20_000 });
}
now = Date.UTC(2026, 1, 1);
const rssBefore = process.resourceUsage().maxRSS / 1024;
const timed = async () => {
  const start = process.hrtime.bigint();
  const summary = await ally.commissions.process("2026-01-01", "2026-02-01");
  return [summary, Number(process.hrtime.bigint() - start) / 1e9];
};
const [first, firstSeconds] = await timed();
const [again, againSeconds] = await timed();
if (again.recorded !== 0 || again.adjusted !== 0) throw new Error(`a repeat recorded ${again.recorded} lines and ${again.adjusted} adjustments`);
console.log(JSON.stringify({
  payments: first.payments,
  lines: first.recorded,
  seconds: firstSeconds,
  againSeconds,
  peakBeforeMB: rssBefore,
  peakAfterMB: process.resourceUsage().maxRSS / 1024,
}));
