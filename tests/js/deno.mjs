// Deno: `import "ally-engine"` from node_modules resolves the package's "deno" export.
import * as lib from "ally-engine";
import { runSuite } from "./suite.mjs";

const summary = await runSuite(lib, "deno", console.log);
Deno.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
