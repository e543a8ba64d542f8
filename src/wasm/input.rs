//! Reading JavaScript values at the edge.
//!
//! serde-wasm-bindgen reads inherited properties and ignores `deny_unknown_fields`, so records are
//! first walked here into JSON: only plain objects (prototype `Object.prototype` or `null`), only
//! own enumerable string keys, no `__proto__` / `constructor` / `prototype` keys, no NaN, ±Infinity
//! or -0, no functions or symbols, bounded depth and size. The JSON is then deserialised into the
//! typed wire structs with `deny_unknown_fields`, and errors carry the path of the bad field.

#[cfg(feature = "engine")]
use chrono::{DateTime, Utc};
use js_sys::{Array, Object, Reflect};
use serde_json::{Map, Number, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::domain::decimal::{js_number, printable};
use crate::domain::money::Credits;
#[cfg(feature = "engine")]
use crate::domain::record::describe;
use crate::domain::record::Fields;
use crate::domain::Error;

/// Nesting deeper than this is refused.
pub const DEPTH_MAX: u32 = 32;
/// More values than this in one record is refused.
pub const NODES_MAX: usize = 1_000_000;
/// The longest string a record may carry, in UTF-16 units (checked before it is copied in).
pub const STRING_LEN_MAX: u32 = 1 << 20;
/// Keys a record may never carry.
pub const RESERVED_KEYS: [&str; 3] = ["__proto__", "constructor", "prototype"];

thread_local! {
    static OBJECT_PROTOTYPE: JsValue = Object::get_prototype_of(&Object::new()).into();
}

/// One step of a path, rendered only when an error needs it.
enum Step {
    Key(String),
    Index(usize),
}

struct Walker<'a> {
    root: &'a str,
    nodes: usize,
    steps: Vec<Step>,
    /// Read a `Date` as its ISO-8601 text (for records whose fields are times; engine build).
    #[cfg_attr(not(feature = "engine"), allow(dead_code))]
    dates: bool,
}

/// Walks `value` into JSON; `path` names it in errors.
pub fn to_json(value: &JsValue, path: &str) -> Result<Value, Error> {
    if let Some(value) = fast_json(value) {
        return Ok(value);
    }
    walk(value, path)
}

/// [`to_json`] by the module's own walker alone.
fn walk(value: &JsValue, path: &str) -> Result<Value, Error> {
    Walker {
        root: path,
        nodes: 0,
        steps: Vec::new(),
        dates: false,
    }
    .walk(value, 0)
}

/// [`to_json`] for records that hold times: a `Date` anywhere reads as its ISO-8601 text (an
/// invalid `Date` is refused). Metadata and other free-form data use [`to_json`], which
/// refuses a `Date` like any other class instance.
#[cfg(feature = "engine")]
pub fn to_json_dated(value: &JsValue, path: &str) -> Result<Value, Error> {
    // The fast reader takes no class instance, a Date included: those come to the walker.
    if let Some(value) = fast_json(value) {
        return Ok(value);
    }
    Walker {
        root: path,
        nodes: 0,
        steps: Vec::new(),
        dates: true,
    }
    .walk(value, 0)
}

/// The record read by `js/codec.js` in one pass of JavaScript, when it takes it: it takes only
/// what the walker below reads to the same value, so the walker is the one set of rules and the
/// one that names what is wrong.
fn fast_json(value: &JsValue) -> Option<Value> {
    // Primitives are one call across the boundary already.
    if !value.is_object() {
        return None;
    }
    serde_json::from_str(&super::codec::record_text(value)?).ok()
}

impl Walker<'_> {
    fn path(&self) -> String {
        let mut out = self.root.to_owned();
        for step in &self.steps {
            match step {
                Step::Key(key) if out.is_empty() => out.push_str(key),
                Step::Key(key) => {
                    out.push('.');
                    out.push_str(key);
                }
                Step::Index(index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::invalid(self.path(), reason)
    }

    fn walk(&mut self, value: &JsValue, depth: u32) -> Result<Value, Error> {
        self.nodes += 1;
        if self.nodes > NODES_MAX {
            return Err(self.fail(format!("more than {NODES_MAX} values")));
        }
        if depth > DEPTH_MAX {
            return Err(self.fail(format!("nested deeper than {DEPTH_MAX} levels")));
        }
        // Dispatch in as few calls across the boundary as possible: numbers and strings are most
        // of any record, and `typeof` already tells objects from functions.
        if let Some(number) = value.as_f64() {
            return number_to_json(number).map_err(|reason| self.fail(reason));
        }
        if value.is_string() {
            let length = value.unchecked_ref::<js_sys::JsString>().length();
            if length > STRING_LEN_MAX {
                return Err(self.fail(format!("a string longer than {STRING_LEN_MAX} characters")));
            }
            let text = value.as_string().unwrap_or_default();
            if text.contains('\0') {
                return Err(self.fail(NUL_REFUSED));
            }
            return Ok(Value::String(text));
        }
        if value.is_object() {
            match array_is_array(value) {
                Ok(true) => return self.walk_array(value.unchecked_ref(), depth),
                Ok(false) => {}
                Err(_) => return Err(self.fail("expected a JSON value, got a revoked Proxy")),
            }
            // A Date is no plain object: only the others are asked for a time (asking costs a
            // caught throw).
            if self.dates && !is_plain(value) {
                if let Some(ms) = date_millis(value) {
                    return chrono::DateTime::from_timestamp_millis(ms as i64)
                        .filter(|_| ms.is_finite())
                        .map(|at| Value::String(crate::domain::reseller::iso_time::format(at)))
                        .ok_or_else(|| self.fail("an invalid Date"));
                }
            }
            return self.walk_object(value, depth);
        }
        if value.is_null() {
            return Ok(Value::Null);
        }
        if let Some(flag) = value.as_bool() {
            return Ok(Value::Bool(flag));
        }
        if value.is_bigint() {
            return i64::try_from(value.clone())
                .map(|n| Value::Number(Number::from(n)))
                .map_err(|_| self.fail("bigint out of the 64-bit range"));
        }
        Err(self.fail(format!("expected a JSON value, got {}", type_name(value))))
    }

    fn walk_array(&mut self, array: &Array, depth: u32) -> Result<Value, Error> {
        // Read through `Reflect`, whose throws are caught: a Proxy's trap or a getter on an index
        // is refused, not carried through the module.
        let length = Reflect::get(array, &"length".into())
            .ok()
            .and_then(|length| length.as_f64())
            .filter(|length| length.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(length))
            .ok_or_else(|| self.fail("its length could not be read"))? as u32;
        if length as usize > NODES_MAX - self.nodes {
            return Err(self.fail(format!("more than {NODES_MAX} values")));
        }
        // A sparse array can claim billions of slots: reserve for what is there, not its length.
        let mut items = Vec::with_capacity((length as usize).min(1024));
        for index in 0..length {
            self.steps.push(Step::Index(index as usize));
            let item = Reflect::get_u32(array, index).map_err(|_| self.fail("reading it threw"))?;
            if item.is_undefined() {
                return Err(self.fail("expected a JSON value, got undefined (or a hole)"));
            }
            items.push(self.walk(&item, depth + 1)?);
            self.steps.pop();
        }
        Ok(Value::Array(items))
    }

    fn walk_object(&mut self, value: &JsValue, depth: u32) -> Result<Value, Error> {
        let object: &Object = value.unchecked_ref();
        if !is_plain(value) {
            return Err(self.fail(format!(
                "expected a plain object (own properties only), got {}",
                type_name(value)
            )));
        }
        let keys = own_keys(object).map_err(|_| self.fail("listing its keys threw"))?;
        let mut map = Map::new();
        for index in 0..keys.length() {
            let key_value = keys.get(index);
            let Some(key) = key_value.as_string() else {
                continue;
            };
            if key.contains('\0') {
                return Err(self.fail(format!("a key with {NUL_REFUSED}")));
            }
            self.steps.push(Step::Key(key));
            if let Some(Step::Key(key)) = self.steps.last() {
                if RESERVED_KEYS.contains(&key.as_str()) {
                    return Err(self.fail(format!("the key \"{key}\" is not allowed")));
                }
            }
            // The key value from Object.keys is reused: no second copy of the name into JS.
            let item = Reflect::get(object, &key_value)
                .map_err(|_| self.fail("reading this property threw"))?;
            if item.is_undefined() {
                self.steps.pop();
                continue; // `{ tier: undefined }` means the same as leaving tier out
            }
            let parsed = self.walk(&item, depth + 1)?;
            if let Some(Step::Key(key)) = self.steps.pop() {
                map.insert(key, parsed);
            }
        }
        Ok(Value::Object(map))
    }
}

/// Whether an object's prototype is `Object.prototype` or `null`: no class instance, no
/// inherited properties.
pub fn is_plain(value: &JsValue) -> bool {
    if !value.is_object() {
        return false; // primitives, null and undefined (which getPrototypeOf would throw on)
    }
    // A Proxy whose trap throws is not a plain object (the throw is caught, not carried through
    // the module).
    let Ok(prototype) = Reflect::get_prototype_of(value) else {
        return false;
    };
    let prototype: JsValue = prototype.into();
    prototype.is_null() || is_object_prototype(&prototype)
}

/// Whether `prototype` is the `Object.prototype` of another realm (a `vm` context, an iframe, a
/// test runner's sandbox): an object whose own prototype is `null` and whose own `constructor`
/// is the built-in `Object` (its source is native code, which no script can write).
fn is_foreign_object_prototype(prototype: &JsValue) -> bool {
    if !prototype.is_object() {
        return false;
    }
    let Ok(above) = Reflect::get_prototype_of(prototype) else {
        return false;
    };
    if !JsValue::from(above).is_null() {
        return false;
    }
    // The own `constructor` as a data property (a getter is not run), the built-in `Object`,
    // whose own `prototype` is this very object: a prototype merely pointing at some realm's
    // `Object` is not that realm's `Object.prototype`.
    let Some(constructor) = own_data_property(prototype, "constructor") else {
        return false;
    };
    constructor.is_function()
        && own_data_property(&constructor, "prototype").is_some_and(|p| p == *prototype)
        && function_source(&constructor)
            .ok()
            .and_then(|source| source.as_string())
            .is_some_and(|source| source == "function Object() { [native code] }")
}

/// An own data property's value, read from its descriptor through catching bindings (an
/// accessor, a throwing Proxy trap or no such property is `None`).
fn own_data_property(object: &JsValue, key: &str) -> Option<JsValue> {
    let target: &Object = object.unchecked_ref();
    let descriptor = Reflect::get_own_property_descriptor(target, &JsValue::from_str(key)).ok()?;
    if !descriptor.is_object() {
        return None;
    }
    let descriptor: &Object = descriptor.unchecked_ref();
    let value = JsValue::from_str("value");
    // The descriptor's own `value` only (an accessor's descriptor has none; an inherited one,
    // from a polluted Object.prototype, is not read): an own data property runs no code.
    let own = Reflect::get_own_property_descriptor(descriptor, &value).ok()?;
    if own.is_undefined() {
        return None;
    }
    Reflect::get(descriptor, &value).ok()
}

#[wasm_bindgen]
extern "C" {
    /// `Function.prototype.toString` called on a value, its throw (not a function) caught.
    #[wasm_bindgen(js_namespace = ["Function", "prototype", "toString"], js_name = call, catch)]
    fn function_source(this: &JsValue) -> std::result::Result<JsValue, JsValue>;
    /// `Object.keys`, its throw (a Proxy's `ownKeys` trap) caught.
    #[wasm_bindgen(js_namespace = Object, js_name = keys, catch)]
    fn object_keys(object: &Object) -> std::result::Result<Array, JsValue>;
    /// `Array.isArray`, its throw (a revoked Proxy) caught.
    #[wasm_bindgen(js_namespace = Array, js_name = isArray, catch)]
    fn array_is_array(value: &JsValue) -> std::result::Result<bool, JsValue>;
    /// `Date.prototype.getTime` called on a value, its throw (not a `Date`) caught.
    #[wasm_bindgen(js_namespace = ["Date", "prototype", "getTime"], js_name = call, catch)]
    fn date_get_time(this: &JsValue) -> std::result::Result<f64, JsValue>;
    /// `Object.entries`, its throw (a Proxy trap, a getter) caught.
    #[cfg_attr(not(feature = "engine"), allow(dead_code))]
    #[wasm_bindgen(js_namespace = Object, js_name = entries, catch)]
    fn object_entries(object: &Object) -> std::result::Result<Array, JsValue>;
}

/// Why [`array_items`] could not read an array.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub enum ArrayRead {
    /// Not an array (`Array.isArray` is false).
    NotArray,
    /// An array of this many elements, beyond the limit (as an integer: formatting a float
    /// would cost the pricing module its float printer).
    TooLong(u64),
    /// Reading it threw (a Proxy trap, a revoked Proxy, a getter on an index or on `length`).
    Threw(JsValue),
}

/// The elements of an array a caller or a host handed over, at most `limit` of them, read
/// through catching bindings (`Array.isArray`, `Reflect.get`): a throw is answered, never
/// carried through the module, and a length past `limit` is refused before anything is read.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub fn array_items(value: &JsValue, limit: usize) -> std::result::Result<Vec<JsValue>, ArrayRead> {
    let length = array_length(value, limit)?;
    (0..length)
        .map(|i| array_item(value, i).map_err(ArrayRead::Threw))
        .collect()
}

/// The length of an array a caller or a host handed over, through catching bindings; for
/// reading its elements one at a time with [`array_item`].
pub fn array_length(value: &JsValue, limit: usize) -> std::result::Result<u32, ArrayRead> {
    if !array_is_array(value).map_err(ArrayRead::Threw)? {
        return Err(ArrayRead::NotArray);
    }
    let length = Reflect::get(value, &JsValue::from_str("length"))
        .map_err(ArrayRead::Threw)?
        .as_f64()
        .unwrap_or(0.0);
    if length > limit as f64 {
        // Saturating: a Proxy may claim any length, Infinity included.
        return Err(ArrayRead::TooLong(length as u64));
    }
    // A whole number no greater than `limit` (an array's length always is one).
    Ok(length as u32)
}

/// One element of an array checked by [`array_length`]; `Err` when reading it throws.
pub fn array_item(array: &JsValue, index: u32) -> std::result::Result<JsValue, JsValue> {
    Reflect::get_u32(array, index)
}

/// Whether `value` is a typed array or `DataView`, without reading it: a Proxy is not (and
/// its traps are not run), so an `instanceof` test after this cannot throw.
pub fn is_view(value: &JsValue) -> bool {
    js_sys::ArrayBuffer::is_view(value)
}

/// A typed array type whose caller values are read as fresh copies.
pub trait Typed: JsCast {
    /// This realm's constructor of the type (`Float64Array`, …).
    fn intrinsic() -> js_sys::Function;
}

macro_rules! typed {
    ($($ty:ident),*) => {$(
        impl Typed for js_sys::$ty {
            fn intrinsic() -> js_sys::Function {
                thread_local! {
                    static CONSTRUCTOR: js_sys::Function = js_sys::$ty::new_with_length(0).constructor();
                }
                CONSTRUCTOR.with(Clone::clone)
            }
        }
    )*};
}
typed!(Float64Array, Uint8Array, Uint32Array, Int32Array);

/// A fresh copy of `value` when it is a typed array of type `T`, made by the type's own
/// constructor through a catching `Reflect.construct`: the copy's length is its elements'
/// count whatever the caller's object claims (a subclass's or an own `length`), so reading it
/// cannot overrun, and a Proxy (not a view) or a detached buffer gives `None`.
pub fn typed<T: Typed>(value: &JsValue) -> Option<T> {
    if !is_view(value) || value.dyn_ref::<T>().is_none() {
        return None;
    }
    let args = Array::of1(value);
    Reflect::construct(&T::intrinsic(), &args)
        .ok()
        .map(JsCast::unchecked_into)
}

/// [`typed`], or the value back, as `dyn_into` answers.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub fn typed_into<T: Typed>(value: JsValue) -> std::result::Result<T, JsValue> {
    typed::<T>(&value).ok_or(value)
}

/// Whether `value` is an array, `false` when asking throws (a revoked Proxy): the reader that
/// follows names that.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub fn is_array(value: &JsValue) -> bool {
    array_is_array(value).unwrap_or(false)
}

/// The time of a real `Date`: `None` for anything else, a value that only inherits from
/// `Date.prototype` or a Proxy included (`getTime` refuses those, and its throw is caught).
pub fn date_millis(value: &JsValue) -> Option<f64> {
    if !value.is_object() {
        return None;
    }
    date_get_time(value).ok()
}

/// A fresh Promise settled as `value` would settle it: a host's answer, awaited without calling
/// anything of it from the module. `Promise.resolve` would hand back a native Promise as it is
/// (its own `then`, or a `constructor` getter, may throw where the module calls it); resolving
/// a new Promise with the answer reads and calls its `then` inside the Promise machinery, where
/// a throw rejects.
#[cfg(feature = "engine")]
pub fn settle(value: &JsValue) -> js_sys::Promise {
    js_sys::Promise::new(&mut |resolve, _reject| {
        // A resolve function does not throw: a bad `then` rejects the Promise instead.
        let _ = resolve.call1(&JsValue::UNDEFINED, value);
    })
}

/// A property of a host's object, its own or its class's, but never one it would only inherit
/// from `Object.prototype`: a method of a class-based storage is found on its prototype, while a
/// polluted `Object.prototype.lock` (or `.answered` on an answer) reaches nothing. Read through
/// catching bindings; `Err` when a trap or getter throws.
///
/// The value is read as the host gives it (a Proxy's `get` trap answers), then dropped when it
/// is `Object.prototype`'s own value for the key: what only a polluted prototype gives.
#[cfg(feature = "engine")]
pub fn host_property(object: &JsValue, key: &str) -> std::result::Result<JsValue, JsValue> {
    if !object.is_object() && !object.is_function() {
        return Ok(JsValue::UNDEFINED);
    }
    let name = JsValue::from_str(key);
    let value = Reflect::get(object, &name)?;
    if value.is_undefined() {
        return Ok(value);
    }
    let polluted = OBJECT_PROTOTYPE.with(|prototype| {
        let prototype: &Object = prototype.unchecked_ref();
        Reflect::get_own_property_descriptor(prototype, &name).is_ok_and(|d| !d.is_undefined())
            && Reflect::get(prototype, &name).is_ok_and(|inherited| inherited == value)
    });
    Ok(if polluted { JsValue::UNDEFINED } else { value })
}

/// Whether a host's answer is a thenable: one with a `then` function of its own or of its
/// class (a polluted `Object.prototype.then` does not count).
#[cfg(feature = "engine")]
pub fn is_thenable(value: &JsValue) -> bool {
    host_property(value, "then").is_ok_and(|then| then.is_function())
}

/// Whether `value` is an `Object.prototype`: this realm's, or another's.
pub fn is_object_prototype(value: &JsValue) -> bool {
    OBJECT_PROTOTYPE.with(|p| p == value) || is_foreign_object_prototype(value)
}

/// The own enumerable string keys of a caller's object; `Err` when listing them throws.
pub fn own_keys(object: &Object) -> std::result::Result<Array, JsValue> {
    object_keys(object)
}

/// The own enumerable `[key, value]` pairs of a caller's object; `Err` when reading them throws.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub fn own_entries(object: &Object) -> std::result::Result<Array, JsValue> {
    object_entries(object)
}

/// A property of a caller's object, its own only: an inherited one reads as absent, so a
/// polluted `Object.prototype` reaches nothing. `Err` when reading it throws (a getter, a Proxy
/// trap), caught rather than carried through the module.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub fn own_property(object: &JsValue, key: &str) -> std::result::Result<JsValue, JsValue> {
    // Any object, whatever its prototype (`Object.create(null)`) or realm: not `instanceof`.
    if !object.is_object() {
        return Ok(JsValue::UNDEFINED);
    }
    let target: &Object = object.unchecked_ref();
    let key = JsValue::from_str(key);
    if Reflect::get_own_property_descriptor(target, &key)?.is_undefined() {
        return Ok(JsValue::UNDEFINED);
    }
    Reflect::get(object, &key)
}

fn number_to_json(number: f64) -> Result<Value, String> {
    if !number.is_finite() || (number == 0.0 && number.is_sign_negative()) {
        return Err(format!(
            "expected a finite number, got {}",
            js_number(number)
        ));
    }
    if number.trunc() == number && number.abs() <= Credits::MAX.as_f64() {
        // Whole and safe: exact as an integer.
        return Ok(Value::Number(Number::from(number as i64)));
    }
    Number::from_f64(number)
        .map(Value::Number)
        .ok_or_else(|| "not a representable number".to_owned())
}

/// A short description of a JS value's type for messages.
pub fn type_name(value: &JsValue) -> String {
    if value.is_undefined() {
        return "undefined".to_owned();
    }
    if value.is_null() {
        return "null".to_owned();
    }
    if let Some(n) = value.as_f64() {
        return format!("the number {}", js_number(n));
    }
    if let Some(s) = value.as_string() {
        return format!("the string \"{}\"", printable(&s));
    }
    if value.is_bigint() {
        return "a bigint".to_owned();
    }
    if value.is_function() {
        return "a function".to_owned();
    }
    if value.is_symbol() {
        return "a symbol".to_owned();
    }
    if value.as_bool().is_some() {
        return "a boolean".to_owned();
    }
    match array_is_array(value) {
        Ok(true) => return "an array".to_owned(),
        Ok(false) => {}
        Err(_) => return "a revoked Proxy".to_owned(),
    }
    // The class's name from its prototype's own data properties: naming a value runs none of
    // its code (no getter, no inherited `constructor`).
    let constructor = Reflect::get_prototype_of(value)
        .ok()
        .map(JsValue::from)
        .filter(JsValue::is_object)
        .and_then(|prototype| own_data_property(&prototype, "constructor"))
        .filter(JsValue::is_function)
        .and_then(|c| own_data_property(&c, "name"))
        .and_then(|n| n.as_string())
        .filter(|n| !n.is_empty());
    match constructor {
        Some(name) if name != "Object" => format!("an instance of {name}"),
        _ => "an object with inherited properties".to_owned(),
    }
}

/// An optional record: `undefined` and `null` read as an empty one.
pub fn record(value: &JsValue, path: &str) -> Result<Fields, Error> {
    if value.is_undefined() || value.is_null() {
        return Fields::optional(None, path);
    }
    Fields::new(to_json(value, path)?, path)
}

/// Whole credits from a JS number or bigint.
pub fn credits(value: &JsValue, path: &str) -> Result<Credits, Error> {
    if let Some(number) = value.as_f64() {
        return Credits::from_f64(number, path);
    }
    if value.is_bigint() {
        return match i64::try_from(value.clone()) {
            Ok(n) => Credits::from_i128(i128::from(n), path),
            Err(_) => Err(Error::invalid(
                path,
                "credits must be at most 9007199254740991 (2^53 - 1), got a larger bigint",
            )),
        };
    }
    Err(Error::invalid(
        path,
        format!(
            "expected whole credits (a number or bigint), got {}",
            type_name(value)
        ),
    ))
}

/// A required string.
#[cfg(feature = "engine")]
pub fn string(value: &JsValue, path: &str) -> Result<String, Error> {
    let text = value.as_string().ok_or_else(|| {
        Error::invalid(path, format!("expected a string, got {}", type_name(value)))
    })?;
    if text.contains('\0') {
        return Err(Error::invalid(path, NUL_REFUSED));
    }
    Ok(text)
}

/// Why a text holding U+0000 is refused: no stored text holds it (PostgreSQL's `jsonb` and
/// `text` cannot, and C hosts end strings at it).
const NUL_REFUSED: &str = "the character U+0000 (NUL) is not allowed";

#[cfg(feature = "engine")]
/// Reads a Date, epoch milliseconds or an ISO-8601 string as an instant.
pub fn instant(value: &JsValue) -> Result<DateTime<Utc>, String> {
    let millis = if let Some(ms) = date_millis(value) {
        ms
    } else if let Some(ms) = value.as_f64() {
        ms
    } else if let Some(text) = value.as_string() {
        return DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|e| format!("\"{}\" is not an ISO-8601 time: {e}", printable(&text)));
    } else {
        return Err(format!(
            "expected a Date, epoch milliseconds or an ISO-8601 string, got {}",
            type_name(value)
        ));
    };
    let shown = js_number(millis);
    if !millis.is_finite() || millis.fract() != 0.0 {
        return Err(format!("{shown} is not a valid time"));
    }
    DateTime::from_timestamp_millis(millis as i64).ok_or_else(|| format!("{shown} is out of range"))
}

#[cfg(feature = "engine")]
/// `YYYY-MM-DD` as a calendar date (read by hand: chrono's format parser would add its whole
/// strftime machinery to the module).
fn iso_date(text: &str) -> Option<chrono::NaiveDate> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    chrono::NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)
}

#[cfg(feature = "engine")]
/// A time: a `Date`, epoch milliseconds, an ISO-8601 time, or an ISO-8601 date (`2026-01-31`,
/// midnight UTC, as periods are usually written).
pub fn time_ms(value: &JsValue, path: &str) -> Result<i64, Error> {
    if let Some(text) = value.as_string() {
        if let Some(date) = iso_date(&text) {
            return Ok(date
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis());
        }
    }
    instant(value)
        .map(|at| at.timestamp_millis())
        .map_err(|reason| Error::invalid(path, reason))
}

#[cfg(feature = "engine")]
pub fn time_value_ms(value: &Value, path: &str) -> Result<i64, Error> {
    let js: JsValue = match value {
        Value::String(s) => JsValue::from_str(s),
        Value::Number(n) => n.as_f64().map_or(JsValue::UNDEFINED, JsValue::from_f64),
        other => {
            return Err(Error::invalid(
                path,
                format!(
                    "expected an ISO-8601 string or epoch milliseconds, got {}",
                    describe(other)
                ),
            ))
        }
    };
    time_ms(&js, path)
}
