// Node, CommonJS: `require("ally-engine")` resolves the package's "require" export.
const lib = require("ally-engine");

import("./suite.mjs")
  .then(({ runSuite }) => runSuite(lib, "node-cjs", console.log))
  .then((summary) => process.exit(summary.failed === 0 && summary.passed > 0 ? 0 : 1));
