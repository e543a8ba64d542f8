// Runs the README's examples against the built package, so the front door cannot rot.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as lib from "ally-engine";
import { Checks } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(resolve(here, "../../js/README.md"), "utf8");
const examples = Object.fromEntries(
  [...readme.matchAll(/<!-- example: (\w+) -->\n```js\n([\s\S]*?)```/g)].map((m) => [m[1], m[2]]),
);
const work = join(here, ".tmp");
mkdirSync(work, { recursive: true });

const checks = new Checks("readme");
const check = (...args) => checks.check(...args);

try {
  check("the README has node, browser and edge examples", ["node", "browser", "edge"].every((k) => examples[k]), Object.keys(examples).join(","));

  // Node: run it and compare what it prints with what its comments promise.
  const printed = [];
  const log = console.log;
  console.log = (...args) => printed.push(args.join(" "));
  try {
    writeFileSync(join(work, "readme-node.mjs"), examples.node);
    await import(pathToFileURL(join(work, "readme-node.mjs")).href);
  } finally {
    console.log = log;
  }
  check("node example: reseller", /^RS-[0-9A-Z]{10} 700$/.test(printed[0] ?? ""), printed[0]);
  check("node example: quote", printed[1] === "7000 70.00", printed[1]);
  check("node example: error", printed[2] === 'ALREADY_EXISTS a reseller with userId "1" already exists', printed[2]);

  // Wallet, commission and payout: run each and compare what it prints with what its comments promise.
  for (const name of ["wallet", "commission", "payout", "analytics", "health"]) {
    const printed = [];
    console.log = (...args) => printed.push(args.join(" "));
    try {
      writeFileSync(join(work, `readme-${name}.mjs`), examples[name] ?? "");
      await import(pathToFileURL(join(work, `readme-${name}.mjs`)).href);
    } finally {
      console.log = log;
    }
    const promised = [...(examples[name] ?? "").matchAll(/console\.log\([^\n]*\/\/ (.*)$/gm)].map((m) => m[1]);
    check(`${name} example: prints what its comments promise`, promised.length > 0 && JSON.stringify(printed) === JSON.stringify(promised), `${JSON.stringify(printed)} vs ${JSON.stringify(promised)}`);
  }

  // Edge: call the Worker's handler with a genuine, a tampered and a malformed quote.
  writeFileSync(join(work, "readme-edge.mjs"), examples.edge);
  const worker = (await import(pathToFileURL(join(work, "readme-edge.mjs")).href)).default;
  const genuine = lib.quote({ tier: "gold", lines: [{ sku: "basic", quantity: 2 }] }, [{ sku: "basic", name: "Basic licence", basePrice: 1000 }]);
  const forwarded = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    forwarded.push(JSON.parse(init.body));
    return new Response("ok");
  };
  try {
    const post = (body) => worker.fetch(new Request("https://edge.example/provision", { method: "POST", body: JSON.stringify(body) }));
    const ok = await post(genuine);
    check("edge example: a genuine quote goes through", ok.status === 200 && forwarded.length === 1 && forwarded[0].valid === true);
    const tampered = await post({ ...genuine, total: 1 });
    check("edge example: a tampered quote is refused", tampered.status === 409 && (await tampered.json()).refused.includes("total"));
    const malformed = await post({ nonsense: true });
    check("edge example: a malformed quote is a 400 with its code", malformed.status === 400 && (await malformed.json()).code === "INVALID_INPUT");
  } finally {
    globalThis.fetch = realFetch;
  }

  // Browser: its figures must match what the package computes.
  const preview = lib.quote({ tier: "gold", lines: [{ sku: "basic", quantity: 3 }] }, [{ sku: "basic", name: "Basic licence", basePrice: 1000 }]);
  check("browser example: the promised figure", examples.browser.includes(`// ${preview.totalMoney} USD`), preview.totalMoney);
} catch (error) {
  checks.crashed(error);
}
process.exit(checks.close());
