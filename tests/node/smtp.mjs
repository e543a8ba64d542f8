// The SMTP mailer against a real SMTP listener on loopback: the low-credit mail arrives with the
// company, balance, threshold and dashboard URL; a relay that fails the first sends delivers the
// notification exactly once, later, through `checkCredits`.
import { Ally } from "ally-engine";
import { smtpMailer } from "ally-engine/smtp";
import { Harness, equal, ok, report } from "../js/harness.mjs";
import { startSmtp } from "./smtp-listener.mjs";

const smtp = await startSmtp();
const { port, received } = smtp;
const mailer = () => smtpMailer({ host: "127.0.0.1", port, secure: false, ignoreTLS: true }, { from: "Ally <noreply@ally.example>" });
const h = new Harness("smtp");
const header = (raw, name) => raw.match(new RegExp(`^${name}: (.*)$`, "mi"))?.[1]?.trim();

h.test("the low-credit mail reaches the reseller through SMTP", async () => {
  received.length = 0;
  const ally = new Ally({ mail: mailer(), config: { lowCreditThreshold: 500, urls: { dashboard: "https://partners.example/dashboard" } } });
  const r = await ally.make().user(1).company("Elite Global").email("ops@elite.example").create();
  await ally.addCredits(r, 800);
  await ally.provision(r, 350, "Issue Pro License");
  equal(received.length, 1, "one mail");
  const [mail] = received;
  equal(mail.to, ["ops@elite.example"], "recipient");
  const raw = mail.raw.replace(/=\r?\n/g, "");
  ok(header(raw, "Subject").includes("Elite Global"), "the subject names the company");
  for (const fact of ["Elite Global", "450 credits", "500 credits", "https://partners.example/dashboard"]) {
    ok(raw.includes(fact), `the body says ${fact}`);
  }
  equal(header(raw, "X-Ally-Idempotency-Key"), `lowCredit:${r.id}:2`, "idempotency key header");
  equal((await ally.outbox())[0].status, "sent", "outbox");
});

h.test("a relay that refuses the first 2 sends: the notification arrives exactly once, later", async () => {
  received.length = 0;
  const ally = new Ally({ mail: mailer() });
  const r = await ally.make().user(2).company("Slow Relay Ltd").email("ops@slow.example").create();
  await ally.addCredits(r, 600);
  smtp.refuse(2);
  const events = [];
  ally.on("lowCredit", (e) => void events.push(e.notification));
  await ally.provision(r, 200);
  equal(events, ["pending"], "the provision stands; the mail waits in the outbox");
  equal(received.length, 0, "nothing delivered yet");
  equal(await ally.checkCredits(), { checked: 1, failed: 1, notified: 0, retried: 0 }, "second attempt refused");
  equal(await ally.checkCredits(), { checked: 1, failed: 0, notified: 0, retried: 1 }, "third attempt delivered");
  equal(await ally.checkCredits(), { checked: 1, failed: 0, notified: 0, retried: 0 }, "nothing left");
  equal(received.length, 1, "exactly once");
  const [record] = await ally.outbox();
  equal([record.status, record.attempts], ["sent", 3], "outbox record");
  equal(await ally.balance(r), 400, "the provision was not undone");
});

const summary = await h.run();
report(summary, console.log);
smtp.close();
process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
