// Bun: `import "ally-engine"` resolves the package's "node" + "import" export (Bun reads the
// "node" condition), and `import "ally-engine/pricing"` the pricing-only module.
import * as full from "ally-engine";
import * as pricing from "ally-engine/pricing";
import { runBoth } from "./suite.mjs";

const summary = await runBoth(full, pricing, "bun", console.log);
process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
