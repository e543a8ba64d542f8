// The shared suite in a page Vite bundles: the package is imported by its name, as an
// application would, and the bundler finds and ships the .wasm files itself.
import initFull, * as full from "ally-engine";
import initPricing, * as pricing from "ally-engine/pricing";
import { runBoth } from "../suite.mjs";

const lines = [];
await initFull();
await initPricing();
window.__summary = await runBoth(full, pricing, "vite", (line) => lines.push(line));
window.__lines = lines;
