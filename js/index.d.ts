// Types of the ESM entries: everything the glue exports except its default initialiser.
export * from "./web/ally_engine.js";
