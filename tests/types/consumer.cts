// The CommonJS view of the package: `require("ally-engine")` resolves its own declarations.
import ally = require("ally-engine");

const cost: number = ally.tierCost(1000, "platinum");
const error: typeof ally.AllyError = ally.AllyError;
// @ts-expect-error the web initialiser is not part of the Node entry
ally.default();
export { cost, error };
