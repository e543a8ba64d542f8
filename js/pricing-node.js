// Node ESM entry of the pricing module: the web glue, instantiated synchronously from its .wasm.
import { readFileSync } from "node:fs";
import { initSync } from "./web/ally_engine.js";

initSync({ module: readFileSync(new URL("./ally_engine_bg.wasm", import.meta.url)) });

export * from "./web/ally_engine.js";
