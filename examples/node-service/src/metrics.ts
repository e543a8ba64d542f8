// The engine's events (`onEvent`) and the HTTP requests, counted and exported in the Prometheus
// text format at GET /metrics: storage calls by operation and outcome with their durations,
// replays, retries and outbox deliveries.
import type { AllyEvent } from "ally-engine";

/** Upper bounds of the storage-call duration histogram, in milliseconds. */
const BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 1000];

type Labels = Record<string, string>;

class Family {
  readonly series = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string, readonly type: "counter" | "histogram") {}

  add(labels: Labels, by = 1): void {
    const key = JSON.stringify(labels);
    const found = this.series.get(key);
    if (found) found.value += by;
    else this.series.set(key, { labels, value: by });
  }
}

const text = (labels: Labels): string => {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`);
  return pairs.length > 0 ? `{${pairs.join(",")}}` : "";
};

export class Metrics {
  private readonly storageCalls = new Family("ally_storage_calls_total", "Calls to the storage, by operation and outcome.", "counter");
  private readonly storageDuration = new Family("ally_storage_call_duration_ms", "Storage call durations in milliseconds.", "histogram");
  private readonly replays = new Family("ally_wallet_replays_total", "Requests answered again from their idempotency key.", "counter");
  private readonly retries = new Family("ally_wallet_retries_total", "Appends decided again after losing a race, by reason.", "counter");
  private readonly outbox = new Family("ally_outbox_attempts_total", "Outbox deliveries handed to the mailer, by outcome.", "counter");
  private readonly requests = new Family("http_requests_total", "HTTP requests, by route and status.", "counter");

  /** The `onEvent` listener. */
  readonly onEvent = (event: AllyEvent): void => {
    const a = event.attributes;
    const label = (key: string): string => String(a[key] ?? "");
    if (event.name.startsWith("ally.storage.")) {
      const operation = label("ally.storage.operation");
      this.storageCalls.add({ operation, outcome: label("ally.storage.outcome") });
      for (const le of BUCKETS) if (event.duration <= le) this.storageDuration.add({ operation, le: String(le) });
      this.storageDuration.add({ operation, le: "+Inf" });
      this.storageDuration.add({ operation, stat: "sum" }, event.duration);
    } else if (event.name === "ally.wallet.replay") {
      this.replays.add({});
    } else if (event.name === "ally.wallet.retry") {
      this.retries.add({ reason: label("ally.retry.reason") });
    } else if (event.name === "ally.outbox.attempt") {
      this.outbox.add({ outcome: label("ally.outbox.outcome") });
    }
  };

  request(route: string, status: number): void {
    this.requests.add({ route, status: String(status) });
  }

  /** The Prometheus text exposition of every series. */
  render(): string {
    const lines: string[] = [];
    for (const family of [this.storageCalls, this.replays, this.retries, this.outbox, this.requests]) {
      lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
      for (const { labels, value } of family.series.values()) lines.push(`${family.name}${text(labels)} ${value}`);
    }
    const h = this.storageDuration;
    lines.push(`# HELP ${h.name} ${h.help}`, `# TYPE ${h.name} histogram`);
    for (const { labels, value } of h.series.values()) {
      const { stat, ...rest } = labels;
      if (stat === "sum") lines.push(`${h.name}_sum${text(rest)} ${value}`);
      else lines.push(`${h.name}_bucket${text(labels)} ${value}`);
      if (labels.le === "+Inf") lines.push(`${h.name}_count${text({ operation: labels.operation ?? "" })} ${value}`);
    }
    return `${lines.join("\n")}\n`;
  }
}
