// Node, ES modules: `import "ally-engine"` resolves the package's "node" + "import" export.
import * as lib from "ally-engine";
import { runSuite } from "./suite.mjs";

const summary = await runSuite(lib, "node-esm", console.log);
process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1);
