// A runtime-neutral test harness: the same cases run in Node (CJS and ESM), Deno, workerd and
// Chromium, so nothing here may use a runtime's own APIs.

export class Harness {
  constructor(runtime) {
    this.runtime = runtime;
    this.cases = [];
    this.results = [];
  }

  test(name, body) {
    this.cases.push({ name, body });
  }

  async run() {
    for (const { name, body } of this.cases) {
      try {
        await body();
        this.results.push({ name, ok: true });
      } catch (error) {
        this.results.push({ name, ok: false, error: String(error && error.stack ? error.stack : error) });
      }
    }
    const passed = this.results.filter((r) => r.ok).length;
    const failed = this.results.length - passed;
    return { runtime: this.runtime, passed, failed, failures: this.results.filter((r) => !r.ok) };
  }
}

function show(value) {
  try {
    return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v));
  } catch {
    return String(value);
  }
}

export function equal(actual, expected, what = "value") {
  const same = Object.is(actual, expected) || show(actual) === show(expected);
  if (!same) throw new Error(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

export function ok(condition, what) {
  if (!condition) throw new Error(`expected: ${what}`);
}

/** Asserts that `fn` throws (or rejects with) an AllyError of `code`; returns the error. */
export async function fails(AllyError, code, fn, what = "call") {
  let error;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  if (!error) throw new Error(`${what}: expected ${code}, but it succeeded`);
  if (!(error instanceof AllyError)) throw new Error(`${what}: expected an AllyError, got ${error && error.name}: ${error && error.message}`);
  if (!(error instanceof Error)) throw new Error(`${what}: an AllyError must be an Error`);
  equal(error.name, "AllyError", `${what}: name`);
  equal(error.code, code, `${what}: code (message: ${error.message})`);
  ok(typeof error.message === "string" && error.message.length > 0, `${what}: a message`);
  ok(error.details && typeof error.details === "object", `${what}: details`);
  ok(Number.isInteger(error.httpStatus) && error.httpStatus >= 400 && error.httpStatus < 600, `${what}: an HTTP status`);
  return error;
}

/** Prints the closing line every runner reads: `N passed, N failed`. */
export function report(summary, print) {
  for (const f of summary.failures) print(`FAIL [${summary.runtime}] ${f.name}\n${f.error}\n`);
  print(`[${summary.runtime}] ${summary.passed} passed, ${summary.failed} failed`);
}

/** Named checks counted for a driver's closing line (for drivers that are not case lists). */
export class Checks {
  constructor(runtime, print = console.log) {
    Object.assign(this, { runtime, print, passed: 0, failed: 0 });
  }

  check(name, condition, detail = "") {
    if (condition) this.passed += 1;
    else {
      this.failed += 1;
      this.print(`FAIL [${this.runtime}] ${name} ${detail}`);
    }
  }

  crashed(error) {
    this.failed += 1;
    this.print(`FAIL [${this.runtime}] ${error && error.stack ? error.stack : error}`);
  }

  /** Prints `[runtime] N passed, N failed` and returns the exit code. */
  close() {
    this.print(`[${this.runtime}] ${this.passed} passed, ${this.failed} failed`);
    return this.failed === 0 && this.passed > 0 ? 0 : 1;
  }
}
