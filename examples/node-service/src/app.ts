// The service: admin routes (resellers, top-ups, payments, commission runs, payouts) and reseller
// routes scoped to the caller (`asReseller`), on one engine over PostgreSQL.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Pool } from "pg";
import { Ally, AllyError, type AllyConfig, type AllyEvent, type AllyMailer, type ResellerScope, type WrittenEntry } from "ally-engine";
import { postgresStorage } from "ally-engine/postgres";
import { Metrics } from "./metrics.js";

export interface ServiceOptions {
  pool: Pool;
  /** The engine's schema (default "ally"); the service's own tables live in "app". */
  schema?: string;
  /** The bearer token of the admin routes. */
  adminToken: string;
  /** The bearer token of GET /metrics (default: the admin token). */
  metricsToken?: string;
  /** The key reseller API keys are signed with. */
  keySecret: string;
  mail?: AllyMailer;
  config?: AllyConfig;
  /** How often the daily low-credit check runs, in milliseconds (0: never). */
  checkCreditsEveryMs?: number;
  logger?: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The caller's own handle, on reseller routes. */
    scope?: ResellerScope;
  }
}

/** A request body as an object of known keys: anything else is 400 INVALID_INPUT. */
function body(request: FastifyRequest, allowed: readonly string[]): Record<string, unknown> {
  const value = request.body ?? {};
  if (typeof value !== "object" || Array.isArray(value)) throw new BadRequest("body", "expected a JSON object");
  const unknown = Object.keys(value).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) throw new BadRequest(`body.${unknown[0]}`, `unknown field; expected ${allowed.join(", ")}`);
  return value as Record<string, unknown>;
}

/** A malformed request the service itself refuses (the engine refuses the rest). */
class BadRequest extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
  }
}

/** The `Idempotency-Key` header, when given. */
function idempotencyKey(request: FastifyRequest): string | undefined {
  const key = request.headers["idempotency-key"];
  if (key === undefined) return undefined;
  if (typeof key !== "string" || key.length === 0 || key.length > 255) throw new BadRequest("Idempotency-Key", "expected one key of 1 to 255 characters");
  return key;
}

/** 201 for a first write, 200 for the answer given again to a repeated key. */
function written(reply: FastifyReply, entry: WrittenEntry | WrittenEntry[]): FastifyReply {
  const replayed = Array.isArray(entry) ? entry.every((e) => e.replayed) : entry.replayed;
  if (replayed) reply.header("idempotent-replayed", "true");
  return reply.code(replayed ? 200 : 201).send(entry);
}

const bearer = (request: FastifyRequest): string => {
  const header = request.headers.authorization ?? "";
  return header.startsWith("Bearer ") ? header.slice(7) : "";
};

// Secrets are compared as HMACs under a key of this process: equal-length digests, compared in
// constant time, whatever the lengths of what was sent.
const COMPARE_KEY = randomBytes(32);
const digest = (text: string): Buffer => createHmac("sha256", COMPARE_KEY).update(text).digest();
const same = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

/**
 * Reseller API keys: `rk_<reseller id>_<version>_<signature>`, signed with the service's key.
 * The version is the reseller's `metadata.apiKeyVersion` (1 when unset): rotating it (POST
 * /admin/resellers/:id/api-key) revokes the reseller's earlier keys.
 */
export function apiKey(secret: string, resellerId: string, version: number): string {
  const signature = createHmac("sha256", secret).update(`${resellerId}:${version}`).digest("base64url");
  return `rk_${resellerId}_${version}_${signature}`;
}

/** The reseller and key version a well-signed key names, or null. */
function keyOf(secret: string, key: string): { id: string; version: number } | null {
  const match = /^rk_(rs_[0-9a-z]{1,64})_([1-9][0-9]{0,8})_[A-Za-z0-9_-]{43}$/.exec(key);
  if (!match || match[1] === undefined || match[2] === undefined) return null;
  const version = Number(match[2]);
  return same(key, apiKey(secret, match[1], version)) ? { id: match[1], version } : null;
}

/** A reseller's current key version (1 when unset), from its record. */
const keyVersion = (reseller: { metadata: Record<string, unknown> }): number => {
  const version = reseller.metadata.apiKeyVersion;
  return typeof version === "number" && Number.isSafeInteger(version) && version >= 1 ? version : 1;
};

/** How long a reseller's key version is trusted before it is read again (a rotation's delay). */
const KEY_VERSION_TTL_MS = 10_000;

/** A body field of the given JSON type, or a 400 naming it. */
function field<T>(b: Record<string, unknown>, name: string, type: "number" | "string" | "array", required: boolean): T | undefined {
  const value = b[name];
  if (value === undefined || value === null) {
    if (required) throw new BadRequest(`body.${name}`, "is required");
    return undefined;
  }
  const ok = type === "array" ? Array.isArray(value) : typeof value === type;
  if (!ok) throw new BadRequest(`body.${name}`, `expected ${type === "array" ? "an array" : `a ${type}`}`);
  return value as T;
}

const unauthorized = (reply: FastifyReply): FastifyReply =>
  reply.code(401).send({ error: { code: "UNAUTHORIZED", message: "a valid bearer token is required" } });

/** The service's own tables (the engine's are `setupPostgres`'s): safe to run again. */
export async function setupService(pool: Pool): Promise<void> {
  await pool.query(`CREATE SCHEMA IF NOT EXISTS app`);
  await pool.query(`CREATE TABLE IF NOT EXISTS app.invoices (
    id bigserial PRIMARY KEY, reseller_id text NOT NULL, entry_id text NOT NULL UNIQUE,
    credits bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
}

export async function buildService(options: ServiceOptions): Promise<FastifyInstance> {
  const { pool, adminToken, keySecret } = options;
  for (const [name, secret] of [["adminToken", adminToken], ["keySecret", keySecret]] as const) {
    if (typeof secret !== "string" || secret.length < 16) throw new Error(`${name} must be a secret of at least 16 characters`);
  }
  const schema = options.schema ?? "ally";
  const metrics = new Metrics();
  let log: FastifyInstance["log"] | null = null;
  const engineOptions = {
    ...(options.config ? { config: options.config } : {}),
    onEvent: (event: AllyEvent) => {
      metrics.onEvent(event);
      // A failed storage call: the driver's own error goes to the log, never to a client.
      if (event.status === "error" && event.exception !== undefined) log?.warn({ err: event.exception, span: event.name, attributes: event.attributes }, "storage call failed");
    },
  };
  // Inside a unit of work no mail goes out before the host commits: the notice stays in the
  // outbox (written with the transaction) and the scheduled checkCredits delivers it.
  const afterCommit: AllyMailer = {
    send() {
      throw new Error("held until the transaction commits");
    },
  };
  // Idempotency keys are per wallet: the two kinds of caller get their own namespaces, so that
  // a reseller's key never collides with an admin's.
  const adminKey = (key: string | undefined) => (key === undefined ? undefined : `admin:${key}`);
  const resellerKey = (key: string | undefined) => (key === undefined ? undefined : `reseller:${key}`);
  const versions = new Map<string, { version: number; read: number }>();
  // Rotations per reseller: a version read that a rotation overtook is not cached.
  const rotations = new Map<string, number>();
  const metricsToken = options.metricsToken ?? adminToken;
  // One engine for the process: it keeps what it replayed of each wallet between requests.
  const ally = new Ally({ ...engineOptions, storage: postgresStorage(pool, { schema }), ...(options.mail ? { mail: options.mail } : {}) });

  const app = Fastify({ logger: options.logger ?? false, bodyLimit: 64 * 1024 });
  log = app.log;

  app.addHook("onResponse", async (request, reply) => {
    metrics.request(request.routeOptions.url ?? "unmatched", reply.statusCode);
  });

  app.setErrorHandler((error: FastifyError | AllyError | BadRequest | Error, request, reply) => {
    if (error instanceof AllyError) {
      if (error.httpStatus >= 500) request.log.error({ err: error, cause: error.cause }, "engine failure");
      return reply.code(error.httpStatus).send({ error: { code: error.code, message: error.message, details: error.details } });
    }
    if (error instanceof BadRequest) {
      return reply.code(400).send({ error: { code: "INVALID_INPUT", message: error.message, details: { field: error.field, reason: error.reason } } });
    }
    const status = "statusCode" in error && typeof error.statusCode === "number" ? error.statusCode : 500;
    if (status >= 400 && status < 500) {
      // Fastify's own refusals: a body that is not JSON, too large, of another media type.
      return reply.code(status).send({ error: { code: "INVALID_INPUT", message: error.message } });
    }
    request.log.error({ err: error }, "unexpected failure");
    return reply.code(500).send({ error: { code: "INTERNAL", message: "internal error" } });
  });

  app.get("/health/live", async () => ({ status: "live" }));
  app.get("/health/ready", async (_request, reply) => {
    try {
      const { rows } = await pool.query(`SELECT max(version) AS version FROM ${schema}.schema_version`);
      return { status: "ready", schemaVersion: Number(rows[0]?.version ?? 0) };
    } catch {
      return reply.code(503).send({ status: "unavailable" });
    }
  });
  app.get("/metrics", async (request, reply) => {
    if (!same(bearer(request), metricsToken)) return unauthorized(reply);
    return reply.type("text/plain; version=0.0.4").send(metrics.render());
  });

  // Admin routes.
  await app.register(async (admin) => {
    admin.addHook("onRequest", async (request, reply) => {
      if (!same(bearer(request), adminToken)) return unauthorized(reply);
    });

    admin.post("/admin/resellers", async (request, reply) => {
      const b = body(request, ["userId", "company", "email", "tier"]);
      const userId = typeof b.userId === "number" ? b.userId : field<string>(b, "userId", "string", true);
      let builder = ally.make().user(userId as string | number).company(field<string>(b, "company", "string", true) as string);
      const email = field<string>(b, "email", "string", false);
      const tier = field<string>(b, "tier", "string", false);
      if (email !== undefined) builder = builder.email(email);
      if (tier !== undefined) builder = builder.tier(tier);
      const reseller = await builder.create();
      return reply.code(201).send({ reseller, apiKey: apiKey(keySecret, reseller.id, 1) });
    });

    // A new API key for the reseller; its earlier keys stop working (within the version TTL).
    admin.post<{ Params: { id: string } }>("/admin/resellers/:id/api-key", async (request, reply) => {
      const current = await ally.find(request.params.id);
      if (!current) return reply.code(404).send({ error: { code: "NOT_FOUND", message: `reseller "${request.params.id}" not found` } });
      const version = keyVersion(current) + 1;
      await ally.updateMetadata(current.id, "apiKeyVersion", version);
      rotations.set(current.id, (rotations.get(current.id) ?? 0) + 1);
      versions.delete(current.id);
      return reply.code(201).send({ apiKey: apiKey(keySecret, current.id, version) });
    });

    admin.get<{ Params: { id: string } }>("/admin/resellers/:id", async (request, reply) => {
      const reseller = await ally.find(request.params.id);
      return reseller ?? reply.code(404).send({ error: { code: "NOT_FOUND", message: `reseller "${request.params.id}" not found` } });
    });

    // A top-up and its invoice row in one transaction: both are written, or neither.
    admin.post<{ Params: { id: string } }>("/admin/resellers/:id/credits", async (request, reply) => {
      const b = body(request, ["amount", "memo"]);
      const amount = field<number>(b, "amount", "number", true) as number;
      const memo = field<string>(b, "memo", "string", false);
      const key = adminKey(idempotencyKey(request));
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const unit = new Ally({ ...engineOptions, storage: postgresStorage(client, { schema }), mail: afterCommit });
        const entry = await unit.addCredits(request.params.id, amount, {
          ...(key ? { idempotencyKey: key } : {}),
          ...(memo !== undefined ? { memo } : {}),
        });
        if (!entry.replayed) {
          await client.query("INSERT INTO app.invoices (reseller_id, entry_id, credits) VALUES ($1, $2, $3)", [entry.walletId, entry.id, entry.amount]);
        }
        await client.query("COMMIT");
        return written(reply, entry);
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    });

    admin.post("/admin/payments", async (request, reply) => {
      const b = body(request, ["id", "clientId", "amount", "at", "kind", "reverses"]);
      for (const name of ["id", "clientId", "at", "kind", "reverses"]) field<string>(b, name, "string", name === "clientId" || name === "at");
      if (typeof b.amount !== "string" && typeof b.amount !== "number") throw new BadRequest("body.amount", "expected a decimal string or a number");
      return reply.code(201).send(await ally.payments.record(b as unknown as Parameters<typeof ally.payments.record>[0]));
    });

    admin.post("/admin/commissions/process", async (request) => {
      const b = body(request, ["start", "end"]);
      return ally.commissions.process(b.start as string, b.end as string);
    });

    admin.post("/admin/payouts", async (request, reply) => {
      const b = body(request, ["description"]);
      const batch = await ally.commissions.createPayoutBatch(b.description !== undefined ? { description: b.description as string } : {});
      return reply.code(201).send(batch);
    });

    admin.post("/admin/check-credits", async () => ally.checkCredits());
  });

  // Reseller routes: the caller's API key names its reseller, and every call goes through its
  // own handle, which answers another reseller's ids as missing ones.
  await app.register(async (routes) => {
    routes.addHook("onRequest", async (request, reply) => {
      const key = keyOf(keySecret, bearer(request));
      if (key === null) return unauthorized(reply);
      let known = versions.get(key.id);
      if (!known || Date.now() - known.read > KEY_VERSION_TTL_MS) {
        const before = rotations.get(key.id) ?? 0;
        const reseller = await ally.find(key.id);
        if (!reseller) return unauthorized(reply);
        known = { version: keyVersion(reseller), read: Date.now() };
        // A rotation while this read was out may have been missed by it: not kept.
        if ((rotations.get(key.id) ?? 0) === before) versions.set(key.id, known);
      }
      if (known.version !== key.version) return unauthorized(reply);
      request.scope = ally.asReseller(key.id);
    });
    routes.addHook("onResponse", async (request) => {
      request.scope?.free();
    });
    const scope = (request: FastifyRequest): ResellerScope => {
      if (!request.scope) throw new Error("no reseller scope on a reseller route");
      return request.scope;
    };

    routes.get("/v1/me", async (request) => scope(request).reseller());
    routes.get("/v1/balance", async (request) => ({ balance: await scope(request).balance() }));

    routes.post("/v1/provisions", async (request, reply) => {
      const b = body(request, ["cost", "memo"]);
      const cost = field<number>(b, "cost", "number", true) as number;
      const memo = field<string>(b, "memo", "string", false) ?? null;
      const key = resellerKey(idempotencyKey(request));
      const entry = await scope(request).provision(cost, memo, key ? { idempotencyKey: key } : null);
      return written(reply, entry);
    });

    routes.post("/v1/provisions/bulk", async (request, reply) => {
      const b = body(request, ["items"]);
      const items = field<{ cost: number; memo?: string }[]>(b, "items", "array", true) as { cost: number; memo?: string }[];
      const key = resellerKey(idempotencyKey(request));
      const entries = await scope(request).provisionBulk(items, key ? { idempotencyKey: key } : null);
      return written(reply, entries);
    });

    routes.get<{ Querystring: { limit?: string; before?: string } }>("/v1/transactions", async (request) => {
      const whole = (name: "limit" | "before"): number | undefined => {
        const text = request.query[name];
        if (text === undefined) return undefined;
        if (!/^[0-9]{1,15}$/.test(text)) throw new BadRequest(name, "expected a whole number");
        return Number(text);
      };
      const limit = whole("limit");
      const before = whole("before");
      return scope(request).transactions({ ...(limit !== undefined ? { limit } : {}), ...(before !== undefined ? { before } : {}) });
    });

    routes.get<{ Params: { key: string } }>("/v1/transactions/by-key/:key", async (request, reply) => {
      const entries = await scope(request).findByIdempotencyKey(`reseller:${request.params.key}`);
      return entries.length > 0 ? entries : reply.code(404).send({ error: { code: "NOT_FOUND", message: "no entry holds that idempotency key" } });
    });

    routes.get("/v1/clients", async (request) => scope(request).clients.getByReseller());
    routes.post("/v1/clients", async (request, reply) => {
      const b = body(request, ["name", "email"]);
      let builder = scope(request).clients.make().name(b.name as string);
      if (b.email !== undefined) builder = builder.email(b.email as string);
      return reply.code(201).send(await builder.create());
    });
    routes.get<{ Params: { id: string } }>("/v1/clients/:id", async (request, reply) => {
      const client = await scope(request).clients.find(request.params.id);
      return client ?? reply.code(404).send({ error: { code: "NOT_FOUND", message: `client "${request.params.id}" not found` } });
    });
  });

  // The daily job: low-credit notices and the outbox's retries.
  const every = options.checkCreditsEveryMs ?? 24 * 60 * 60 * 1000;
  if (every > 0) {
    const timer = setInterval(() => {
      ally.checkCredits().catch((error: unknown) => app.log.error({ err: error }, "checkCredits failed"));
    }, every);
    timer.unref();
    app.addHook("onClose", async () => clearInterval(timer));
  }
  app.addHook("onClose", async () => ally.free());
  return app;
}
