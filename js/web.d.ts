export * from "./web/ally_engine.js";
import type { InitInput, InitOutput } from "./web/ally_engine.js";
/** Loads the module; pass a URL, Response, bytes or a compiled module to load it from elsewhere. */
export default function initAlly(moduleOrPath?: InitInput | Promise<InitInput>): Promise<InitOutput>;
