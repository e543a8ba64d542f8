// Deno: `import "ally-engine"` from node_modules resolves the package's "deno" export.
import * as full from "ally-engine";
import * as pricing from "ally-engine/pricing";
import { runBoth } from "./suite.mjs";

const summary = await runBoth(full, pricing, "deno", console.log);
Deno.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
