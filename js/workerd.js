// Cloudflare Workers / workerd entry: the runtime compiles imported .wasm files as modules
// (raw bytes cannot be compiled there), so the module is imported and instantiated synchronously.
import wasmModule from "./ally_engine_bg.wasm";
import { initSync } from "./web/ally_engine.js";

initSync({ module: wasmModule });

export * from "./web/ally_engine.js";
