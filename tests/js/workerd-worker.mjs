// Runs the suite inside workerd. The package is imported through its "workerd" entries, which
// import the .wasm as a compiled module (workerd cannot compile raw bytes at run time).
import * as full from "ally-engine";
import * as pricing from "ally-engine/pricing";
import { runBoth } from "./suite.mjs";

export default {
  async fetch() {
    const lines = [];
    const summary = await runBoth(full, pricing, "workerd", (line) => lines.push(line));
    return Response.json({ summary, lines });
  },
};
