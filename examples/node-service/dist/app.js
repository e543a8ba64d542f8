// The service: admin routes (resellers, top-ups, payments, commission runs, payouts) and reseller
// routes scoped to the caller (`asReseller`), on one engine over PostgreSQL.
import { createHmac, timingSafeEqual } from "node:crypto";
import Fastify from "fastify";
import { Ally, AllyError } from "ally-engine";
import { postgresStorage } from "ally-engine/postgres";
import { Metrics } from "./metrics.js";
/** A request body as an object of known keys: anything else is 400 INVALID_INPUT. */
function body(request, allowed) {
    const value = request.body ?? {};
    if (typeof value !== "object" || Array.isArray(value))
        throw new BadRequest("body", "expected a JSON object");
    const unknown = Object.keys(value).filter((key) => !allowed.includes(key));
    if (unknown.length > 0)
        throw new BadRequest(`body.${unknown[0]}`, `unknown field; expected ${allowed.join(", ")}`);
    return value;
}
/** A malformed request the service itself refuses (the engine refuses the rest). */
class BadRequest extends Error {
    field;
    reason;
    constructor(field, reason) {
        super(`${field}: ${reason}`);
        this.field = field;
        this.reason = reason;
    }
}
/** The `Idempotency-Key` header, when given. */
function idempotencyKey(request) {
    const key = request.headers["idempotency-key"];
    if (key === undefined)
        return undefined;
    if (typeof key !== "string" || key.length === 0 || key.length > 255)
        throw new BadRequest("Idempotency-Key", "expected one key of 1 to 255 characters");
    return key;
}
/** 201 for a first write, 200 for the answer given again to a repeated key. */
function written(reply, entry) {
    const replayed = Array.isArray(entry) ? entry.every((e) => e.replayed) : entry.replayed;
    if (replayed)
        reply.header("idempotent-replayed", "true");
    return reply.code(replayed ? 200 : 201).send(entry);
}
const bearer = (request) => {
    const header = request.headers.authorization ?? "";
    return header.startsWith("Bearer ") ? header.slice(7) : "";
};
const same = (a, b) => {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
};
/** Reseller API keys: `rk_<reseller id>_<signature>`, signed with the service's key. */
export function apiKey(secret, resellerId) {
    return `rk_${resellerId}_${createHmac("sha256", secret).update(resellerId).digest("base64url")}`;
}
function resellerOfKey(secret, key) {
    const match = /^rk_(rs_[0-9a-z]+)_([A-Za-z0-9_-]{43})$/.exec(key);
    if (!match || match[1] === undefined)
        return null;
    return same(key, apiKey(secret, match[1])) ? match[1] : null;
}
const unauthorized = (reply) => reply.code(401).send({ error: { code: "UNAUTHORIZED", message: "a valid bearer token is required" } });
/** The service's own tables (the engine's are `setupPostgres`'s): safe to run again. */
export async function setupService(pool) {
    await pool.query(`CREATE SCHEMA IF NOT EXISTS app`);
    await pool.query(`CREATE TABLE IF NOT EXISTS app.invoices (
    id bigserial PRIMARY KEY, reseller_id text NOT NULL, entry_id text NOT NULL UNIQUE,
    credits bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
}
export async function buildService(options) {
    const { pool, adminToken, keySecret } = options;
    const schema = options.schema ?? "ally";
    const metrics = new Metrics();
    const engineOptions = { ...(options.config ? { config: options.config } : {}), onEvent: metrics.onEvent };
    // One engine for the process: it keeps what it replayed of each wallet between requests.
    const ally = new Ally({ ...engineOptions, storage: postgresStorage(pool, { schema }), ...(options.mail ? { mail: options.mail } : {}) });
    const app = Fastify({ logger: options.logger ?? false, bodyLimit: 64 * 1024 });
    app.addHook("onResponse", async (request, reply) => {
        metrics.request(request.routeOptions.url ?? "unmatched", reply.statusCode);
    });
    app.setErrorHandler((error, request, reply) => {
        if (error instanceof AllyError) {
            if (error.httpStatus >= 500)
                request.log.error({ err: error, cause: error.cause }, "engine failure");
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
        }
        catch {
            return reply.code(503).send({ status: "unavailable" });
        }
    });
    app.get("/metrics", async (_request, reply) => reply.type("text/plain; version=0.0.4").send(metrics.render()));
    // Admin routes.
    await app.register(async (admin) => {
        admin.addHook("onRequest", async (request, reply) => {
            if (!same(bearer(request), adminToken))
                return unauthorized(reply);
        });
        admin.post("/admin/resellers", async (request, reply) => {
            const b = body(request, ["userId", "company", "email", "tier"]);
            let builder = ally.make().user(b.userId).company(b.company);
            if (b.email !== undefined)
                builder = builder.email(b.email);
            if (b.tier !== undefined)
                builder = builder.tier(b.tier);
            const reseller = await builder.create();
            return reply.code(201).send({ reseller, apiKey: apiKey(keySecret, reseller.id) });
        });
        admin.get("/admin/resellers/:id", async (request, reply) => {
            const reseller = await ally.find(request.params.id);
            return reseller ?? reply.code(404).send({ error: { code: "NOT_FOUND", message: `reseller "${request.params.id}" not found` } });
        });
        // A top-up and its invoice row in one transaction: both are written, or neither.
        admin.post("/admin/resellers/:id/credits", async (request, reply) => {
            const b = body(request, ["amount", "memo"]);
            const key = idempotencyKey(request);
            const client = await pool.connect();
            try {
                await client.query("BEGIN");
                const unit = new Ally({ ...engineOptions, storage: postgresStorage(client, { schema }) });
                const entry = await unit.addCredits(request.params.id, b.amount, {
                    ...(key ? { idempotencyKey: key } : {}),
                    ...(b.memo !== undefined ? { memo: b.memo } : {}),
                });
                if (!entry.replayed) {
                    await client.query("INSERT INTO app.invoices (reseller_id, entry_id, credits) VALUES ($1, $2, $3)", [entry.walletId, entry.id, entry.amount]);
                }
                await client.query("COMMIT");
                return written(reply, entry);
            }
            catch (error) {
                await client.query("ROLLBACK").catch(() => { });
                throw error;
            }
            finally {
                client.release();
            }
        });
        admin.post("/admin/payments", async (request, reply) => {
            const b = body(request, ["id", "clientId", "amount", "at", "kind", "reverses"]);
            return reply.code(201).send(await ally.payments.record(b));
        });
        admin.post("/admin/commissions/process", async (request) => {
            const b = body(request, ["start", "end"]);
            return ally.commissions.process(b.start, b.end);
        });
        admin.post("/admin/payouts", async (request, reply) => {
            const b = body(request, ["description"]);
            const batch = await ally.commissions.createPayoutBatch(b.description !== undefined ? { description: b.description } : {});
            return reply.code(201).send(batch);
        });
        admin.post("/admin/check-credits", async () => ally.checkCredits());
    });
    // Reseller routes: the caller's API key names its reseller, and every call goes through its
    // own handle, which answers another reseller's ids as missing ones.
    await app.register(async (routes) => {
        routes.addHook("onRequest", async (request, reply) => {
            const id = resellerOfKey(keySecret, bearer(request));
            if (id === null)
                return unauthorized(reply);
            request.scope = ally.asReseller(id);
        });
        routes.addHook("onResponse", async (request) => {
            request.scope?.free();
        });
        const scope = (request) => {
            if (!request.scope)
                throw new Error("no reseller scope on a reseller route");
            return request.scope;
        };
        routes.get("/v1/me", async (request) => scope(request).reseller());
        routes.get("/v1/balance", async (request) => ({ balance: await scope(request).balance() }));
        routes.post("/v1/provisions", async (request, reply) => {
            const b = body(request, ["cost", "memo"]);
            const key = idempotencyKey(request);
            const entry = await scope(request).provision(b.cost, b.memo ?? null, key ? { idempotencyKey: key } : null);
            return written(reply, entry);
        });
        routes.post("/v1/provisions/bulk", async (request, reply) => {
            const b = body(request, ["items"]);
            const key = idempotencyKey(request);
            const entries = await scope(request).provisionBulk(b.items, key ? { idempotencyKey: key } : null);
            return written(reply, entries);
        });
        routes.get("/v1/transactions", async (request) => {
            const whole = (name) => {
                const text = request.query[name];
                if (text === undefined)
                    return undefined;
                if (!/^[0-9]{1,15}$/.test(text))
                    throw new BadRequest(name, "expected a whole number");
                return Number(text);
            };
            const limit = whole("limit");
            const before = whole("before");
            return scope(request).transactions({ ...(limit !== undefined ? { limit } : {}), ...(before !== undefined ? { before } : {}) });
        });
        routes.get("/v1/transactions/by-key/:key", async (request, reply) => {
            const entries = await scope(request).findByIdempotencyKey(request.params.key);
            return entries.length > 0 ? entries : reply.code(404).send({ error: { code: "NOT_FOUND", message: "no entry holds that idempotency key" } });
        });
        routes.get("/v1/clients", async (request) => scope(request).clients.getByReseller());
        routes.post("/v1/clients", async (request, reply) => {
            const b = body(request, ["name", "email"]);
            let builder = scope(request).clients.make().name(b.name);
            if (b.email !== undefined)
                builder = builder.email(b.email);
            return reply.code(201).send(await builder.create());
        });
        routes.get("/v1/clients/:id", async (request, reply) => {
            const client = await scope(request).clients.find(request.params.id);
            return client ?? reply.code(404).send({ error: { code: "NOT_FOUND", message: `client "${request.params.id}" not found` } });
        });
    });
    // The daily job: low-credit notices and the outbox's retries.
    const every = options.checkCreditsEveryMs ?? 24 * 60 * 60 * 1000;
    if (every > 0) {
        const timer = setInterval(() => {
            ally.checkCredits().catch((error) => app.log.error({ err: error }, "checkCredits failed"));
        }, every);
        timer.unref();
        app.addHook("onClose", async () => clearInterval(timer));
    }
    app.addHook("onClose", async () => ally.free());
    return app;
}
//# sourceMappingURL=app.js.map