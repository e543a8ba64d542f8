// The codec between the module and JavaScript. The module imports these two functions (a
// wasm-bindgen snippet, so every target's glue loads this one file):
//
// - `encodeRecord` reads a caller's record into JSON text in one pass of ordinary JavaScript,
//   instead of one call across the boundary per property. It takes only what the module's own
//   reader (src/wasm/input.rs) would read to the same value: plain objects' own enumerable
//   keys, arrays without holes, safe integers, strings, booleans and null. Anything else (a
//   fraction, a class instance, a Date, a bigint, a reserved key, a throwing getter, a size
//   limit reached) answers `undefined`, and the module's reader reads the record instead and
//   says exactly what is wrong with it. A fast path, never a second set of rules.
// - `decodeResult` builds a result from the compact bytes src/wasm/codec.rs writes: the same
//   value `JSON.parse` would give for serde_json's text, without writing or parsing any text.

const DEPTH_MAX = 32;
const NODES_MAX = 1_000_000;
const STRING_LEN_MAX = 1 << 20;
const OBJECT_PROTOTYPE = Object.prototype;
/** Thrown inside the walk to hand the record to the module's reader. */
const UNSURE = Symbol("unsure");

const isWellFormed = String.prototype.isWellFormed;
const LONE_SURROGATE = /[\uD800-\uDFFF]/;

let nodes = 0;

export function encodeRecord(value) {
  // A getter may call the module again in the middle of a walk: the outer walk keeps its count.
  const outer = nodes;
  nodes = 0;
  try {
    return write(value, 0);
  } catch {
    // UNSURE, or a getter or Proxy trap that threw: the module's reader reads it again and
    // names what happened.
    return undefined;
  } finally {
    nodes = outer;
  }
}

/** Text the module reads as JavaScript wrote it: no U+0000, no lone surrogate. */
function plainText(text) {
  if (text.length > STRING_LEN_MAX || text.includes("\0")) return false;
  return isWellFormed === undefined ? !LONE_SURROGATE.test(text) : isWellFormed.call(text);
}

function write(value, depth) {
  if (++nodes > NODES_MAX || depth > DEPTH_MAX) throw UNSURE;
  switch (typeof value) {
    case "number":
      // Fractions are read by the module (its float reader is exact); -0, NaN and ±Infinity are
      // refused there, with the reason.
      if (!Number.isSafeInteger(value) || Object.is(value, -0)) throw UNSURE;
      return "" + value;
    case "string":
      // A lone surrogate is read by the module as U+FFFD, as the walker reads it.
      if (!plainText(value)) throw UNSURE;
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "object":
      if (value === null) return "null";
      return Array.isArray(value) ? writeArray(value, depth) : writeObject(value, depth);
    default:
      throw UNSURE; // undefined, functions, symbols, bigints
  }
}

function writeArray(array, depth) {
  const length = array.length; // a Proxy may answer anything: only a count is a length
  if (typeof length !== "number" || !Number.isInteger(length) || length < 0 || length > NODES_MAX - nodes) throw UNSURE;
  let out = "[";
  for (let i = 0; i < length; i++) {
    const item = array[i];
    if (item === undefined) throw UNSURE;
    out += (i === 0 ? "" : ",") + write(item, depth + 1);
  }
  return out + "]";
}

function writeObject(object, depth) {
  const prototype = Object.getPrototypeOf(object);
  if (prototype !== OBJECT_PROTOTYPE && prototype !== null) throw UNSURE;
  const keys = Object.keys(object);
  let out = "{";
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (key === "__proto__" || key === "constructor" || key === "prototype" || !plainText(key)) {
      throw UNSURE;
    }
    const item = object[key];
    if (item === undefined) continue; // `{ tier: undefined }` means leaving tier out
    out += (first ? "" : ",") + JSON.stringify(key) + ":" + write(item, depth + 1);
    first = false;
  }
  return out + "}";
}

// The result form (src/wasm/codec.rs): a tag byte, then its payload, little-endian.
const NULL = 0;
const FALSE = 1;
const TRUE = 2;
const INT = 3; // i32
const FLOAT = 4; // f64
const STRING = 5; // u32 byte length, UTF-8
const ARRAY = 6; // u32 count, then the items
const OBJECT = 7; // u32 count, the values, then the shape: which keys, in order
const MAP = 8; // u32 count, then key (a string's payload) and value pairs
// A shape is a u16: a shape this result defined before, or SHAPE_DEFINE and its keys. A key is
// a u16: a name this result defined before, or NAME_DEFINE and the name (a string's payload).
const SHAPE_DEFINE = 0xffff;
const NAME_DEFINE = 0xffff;

// Objects of a known shape are built by an object literal: V8 gives every object of one
// literal the same hidden class at once, where adding keys one by one walks transitions (about
// five times slower on a quote). Each maker's keys are read from the maker itself, so a maker
// can only ever be found for the keys it writes; any other shape is built key by key.
const MAKERS = new Map();
// The shapes seen so far, as a tree of their keys: finding one is a lookup per key, with no
// text to build. Bounded, since a result's maps could otherwise grow it without end.
const SHAPES = { next: new Map(), shape: null };
const SHAPE_NODES_MAX = 16384;
let shapeNodes = 0;

function maker(make) {
  const probe = make(Array.from({ length: 32 }, (_, i) => i));
  const keys = Object.keys(probe);
  if (keys.some((key, i) => probe[key] !== i)) throw new Error("ally-engine: a maker must write its values in order");
  MAKERS.set(keys.join("\0"), make);
}

// A quote (src/wasm/types.rs: Quote and its parts), the hottest result.
maker((v) => ({ request: v[0], tier: v[1], discountRate: v[2], lines: v[3], subtotal: v[4], discount: v[5], total: v[6], totalMoney: v[7], currency: v[8], catalogDigest: v[9], fingerprint: v[10] }));
maker((v) => ({ tier: v[0], lines: v[1], rounding: v[2] }));
maker((v) => ({ sku: v[0], quantity: v[1] }));
maker((v) => ({ sku: v[0], name: v[1], quantity: v[2], pricing: v[3], unitPrice: v[4], bands: v[5], subtotal: v[6], discountRate: v[7], discount: v[8], total: v[9] }));
maker((v) => ({ sku: v[0], name: v[1], quantity: v[2], pricing: v[3], unitPrice: v[4], bands: v[5], packages: v[6], freeUnits: v[7], subtotal: v[8], discountRate: v[9], discount: v[10], total: v[11] }));
maker((v) => ({ band: v[0], upTo: v[1], quantity: v[2], unitPrice: v[3], amount: v[4] }));
maker((v) => ({ band: v[0], upTo: v[1], quantity: v[2], unitPrice: v[3], flatFee: v[4], amount: v[5] }));

function shapeOf(keys) {
  let node = SHAPES;
  for (let i = 0; i < keys.length && node !== null; i++) {
    let next = node.next.get(keys[i]);
    if (next === undefined && shapeNodes < SHAPE_NODES_MAX) {
      shapeNodes++;
      next = { next: new Map(), shape: null };
      node.next.set(keys[i], next);
    }
    node = next ?? null;
  }
  if (node !== null && node.shape !== null) return node.shape;
  const shape = { size: keys.length, make: MAKERS.get(arrayJoin.call(keys, "\0")) ?? keyByKey(keys) };
  if (node !== null) node.shape = shape;
  return shape;
}

function keyByKey(keys) {
  return (values) => {
    const object = {};
    for (let i = 0; i < keys.length; i++) put(object, keys[i], values[i]);
    return object;
  };
}

/** An own data property, as JSON.parse makes it: no inherited setter runs (a polluted or frozen
 * `Object.prototype`), and `__proto__` is a key, never the prototype. */
function put(object, key, value) {
  // The descriptor has no prototype: an inherited `get` or `set` (a polluted prototype) is not
  // read into it.
  defineProperty(object, key, { __proto__: null, value, enumerable: true, writable: true, configurable: true });
}

// The built-ins the decoder calls, taken when the module loads.
const defineProperty = Object.defineProperty;
const arrayJoin = Array.prototype.join;
/** An array without a prototype: writing and reading its items runs no inherited accessor (a
 * host may have polluted `Array.prototype` with one). */
function bare() {
  const array = [];
  Object.setPrototypeOf(array, null);
  return array;
}
const arrayFrom = Array.from;
const fromCharCodes = (codes) => String.fromCharCode.apply(null, codes);
// Each string is decoded on its own: a leading U+FEFF is part of it, not a byte order mark.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
let bytes = new Uint8Array(0);
let view = new DataView(bytes.buffer);
let at = 0;
let names = bare();
let shapes = bare();
// The values of an object or an array are read into the scratch array of its depth, reused: a
// maker or `Array.from` copies them out. Scratch arrays have no prototype, so filling one runs
// no inherited setter.
const scratch = bare();
let depth = 0;

function scratchAt(level) {
  let values = scratch[level];
  if (values === undefined) {
    values = bare();
    scratch[level] = values;
  }
  return values;
}

let active = 0;

export function decodeResult(input) {
  // No caller code runs during a decode; should one ever, a decode inside it keeps the outer
  // one's place, tables and scratch levels (it reads into the levels below it).
  const outer = { bytes, view, at, names, shapes, depth };
  active++;
  bytes = input;
  view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  at = 0;
  names = bare();
  shapes = bare();
  try {
    const value = read();
    if (at !== bytes.length) throw new TypeError("ally-engine: a result had trailing bytes");
    return value;
  } finally {
    ({ bytes, view, at, names, shapes, depth } = outer);
    if (--active === 0) {
      // Keep no view of the module's memory, and no value, between calls.
      bytes = new Uint8Array(0);
      view = new DataView(bytes.buffer);
      for (let level = 0; level < scratch.length; level++) scratch[level].length = 0;
    }
  }
}

function read() {
  switch (bytes[at++]) {
    case NULL:
      return null;
    case FALSE:
      return false;
    case TRUE:
      return true;
    case INT: {
      const value = view.getInt32(at, true);
      at += 4;
      return value;
    }
    case FLOAT: {
      const value = view.getFloat64(at, true);
      at += 8;
      return value;
    }
    case STRING:
      return readString();
    case ARRAY:
      return readArray(readU32());
    case OBJECT: {
      const count = readU32();
      const values = readValues(count);
      const shape = readShape();
      if (shape.size !== count) throw new TypeError("ally-engine: a result's object did not match its shape");
      return shape.make(values);
    }
    case MAP: {
      const count = readU32();
      const object = {};
      for (let i = 0; i < count; i++) {
        const key = readString();
        put(object, key, read());
      }
      return object;
    }
    default:
      throw new TypeError(`ally-engine: a result had an unknown tag at byte ${at - 1}`);
  }
}

/** `count` values into the scratch array of this depth (items past `count` are stale). */
function readValues(count) {
  const values = scratchAt(depth);
  depth++; // a throw ends the decode, which puts `depth` back
  for (let i = 0; i < count; i++) values[i] = read();
  depth--;
  return values;
}

/** An array, made as a literal makes it (no inherited setter runs): short ones by literals, the
 * others by `Array.from` over the values. */
function readArray(count) {
  switch (count) {
    case 0:
      return [];
    case 1:
      return [read()];
    case 2: {
      const a = read();
      return [a, read()];
    }
    case 3: {
      const a = read();
      const b = read();
      return [a, b, read()];
    }
    default: {
      const values = readValues(count);
      values.length = count;
      return arrayFrom(values);
    }
  }
}

function readU16() {
  const n = view.getUint16(at, true);
  at += 2;
  return n;
}

function readU32() {
  const n = view.getUint32(at, true);
  at += 4;
  return n;
}

function readShape() {
  const index = readU16();
  if (index !== SHAPE_DEFINE) {
    if (index >= shapes.length) throw new TypeError(`ally-engine: a result used shape ${index} before defining it`);
    return shapes[index];
  }
  const count = readU16();
  const keys = bare();
  for (let i = 0; i < count; i++) keys[i] = readName();
  const shape = shapeOf(keys);
  shapes[shapes.length] = shape;
  return shape;
}

function readName() {
  const index = readU16();
  if (index !== NAME_DEFINE) {
    if (index >= names.length) throw new TypeError(`ally-engine: a result used name ${index} before defining it`);
    return names[index];
  }
  const name = readString();
  names[names.length] = name;
  return name;
}

// Recently read short ASCII strings (ids, skus, decimals, codes: most of any result), by a hash
// of their bytes: a hit compares bytes and allocates nothing.
const RECENT_SIZE = 4096;
const recent = bare();
for (let i = 0; i < RECENT_SIZE; i++) recent[i] = "";

function readString() {
  const length = readU32();
  const end = at + length;
  if (end > bytes.length) throw new TypeError("ally-engine: a result's string ran past its end");
  let text;
  if (length <= 32) {
    let hash = length;
    let ascii = true;
    for (let i = at; i < end; i++) {
      const byte = bytes[i];
      ascii = ascii && byte < 0x80;
      hash = Math.imul(hash ^ byte, 0x01000193);
    }
    if (ascii) {
      const slot = (hash >>> 0) & (RECENT_SIZE - 1);
      text = recent[slot];
      if (!sameAscii(text, at, length)) {
        text = fromCharCodes(bytes.subarray(at, end));
        recent[slot] = text;
      }
      at = end;
      return text;
    }
  }
  text = utf8.decode(bytes.subarray(at, end));
  at = end;
  return text;
}

function sameAscii(text, from, length) {
  if (text.length !== length) return false;
  for (let i = 0; i < length; i++) {
    if (text.charCodeAt(i) !== bytes[from + i]) return false;
  }
  return true;
}
