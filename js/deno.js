// Deno entry: the web glue, instantiated from the one shipped .wasm read from disk.
import { initSync } from "./web/ally_engine.js";

initSync({ module: await Deno.readFile(new URL("./ally_engine_bg.wasm", import.meta.url)) });

export * from "./web/ally_engine.js";
