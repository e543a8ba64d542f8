// Browser and bundler entry: call the default export once (it fetches the .wasm next to this
// file unless told otherwise), then use the named exports.
import init from "./web/ally_engine.js";

export * from "./web/ally_engine.js";

export default function initAlly(moduleOrPath) {
  return init({ module_or_path: moduleOrPath ?? new URL("./ally_engine_bg.wasm", import.meta.url) });
}
