// The process: configuration from the environment, the schema migrated, the service listening,
// and a graceful shutdown on SIGTERM or SIGINT (in-flight requests finish, then the pool ends).
import pg from "pg";
import { setupPostgres } from "ally-engine/postgres";
import { smtpMailer } from "ally-engine/smtp";
import { buildService, setupService } from "./app.js";

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") {
    console.error(`${name} must be set`);
    process.exit(2);
  }
  return value;
};

const pool = new pg.Pool({ connectionString: env("DATABASE_URL"), max: Number(env("PG_POOL_MAX", "20")) });
const schema = env("ALLY_SCHEMA", "ally");
await setupPostgres(pool, { schema });
await setupService(pool);
const smtp = process.env.SMTP_URL;
const mail = smtp ? smtpMailer({ url: smtp }, { from: env("MAIL_FROM", "Ally <noreply@localhost>") }) : undefined;
const app = await buildService({
  pool,
  schema,
  adminToken: env("ADMIN_TOKEN"),
  ...(process.env.METRICS_TOKEN ? { metricsToken: process.env.METRICS_TOKEN } : {}),
  keySecret: env("API_KEY_SECRET"),
  ...(mail ? { mail } : {}),
  config: { lowCreditThreshold: Number(env("LOW_CREDIT_THRESHOLD", "500")) },
  checkCreditsEveryMs: Number(env("CHECK_CREDITS_EVERY_MS", String(24 * 60 * 60 * 1000))),
  logger: env("LOG", "true") === "true",
});
const address = await app.listen({ host: env("HOST", "127.0.0.1"), port: Number(env("PORT", "3000")) });
console.log(`listening on ${address}`);

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    app
      .close()
      .then(() => pool.end())
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        console.error(error);
        process.exit(1);
      });
  });
}
