// Runs the suite inside workerd. The package is imported through its "workerd" entry, which
// imports the .wasm as a compiled module (workerd cannot compile raw bytes at run time).
import * as lib from "ally-engine";
import { runSuite } from "./suite.mjs";

export default {
  async fetch() {
    const lines = [];
    const summary = await runSuite(lib, "workerd", (line) => lines.push(line));
    return Response.json({ summary, lines });
  },
};
