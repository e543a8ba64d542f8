// Node ESM entry: the CommonJS build itself, so that `import` and `require` in one process share
// one engine (one wasm instance, one `AllyError` class: `instanceof` holds across them).
export * from "./ally_engine.cjs";
