//! The one place where engine errors become JavaScript `AllyError`s.
//!
//! `AllyError` is exported as a class so that `err instanceof AllyError` works. Thrown errors are
//! created by the runtime's own `Error` constructor (so they carry a real stack), then given
//! `AllyError.prototype`, whose own prototype is `Error.prototype`. That works in every target
//! wasm-bindgen emits, with no hand-written JavaScript.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::domain::error::Detail;
use crate::domain::Error;

/// The class of every error the package throws. Instances are never built by hand.
#[wasm_bindgen(skip_typescript)]
pub struct AllyError {
    _private: (),
}

/// The storage operations an adapter's `STORAGE_FAILED` may name; any other is `"storage"`.
const OPERATIONS: [&str; 11] = [
    "get",
    "find",
    "put",
    "append",
    "read",
    "findClaim",
    "lock",
    "combine",
    "unlock",
    "setup",
    "connect",
];

#[wasm_bindgen]
impl AllyError {
    /// For storage adapters: a `STORAGE_FAILED` error whose message is safe to show a client,
    /// the driver's own error kept as `cause` for the logs.
    #[wasm_bindgen(js_name = storageFailed, skip_typescript)]
    pub fn storage_failed(operation: &str, reason: &str, cause: JsValue) -> JsValue {
        let operation = OPERATIONS
            .into_iter()
            .find(|known| *known == operation)
            .unwrap_or("storage");
        let error = to_js(&Error::StorageFailed {
            operation,
            reason: reason.to_owned(),
        });
        if !cause.is_undefined() {
            // As `new Error(message, { cause })` defines it: not enumerable, so a response
            // body made with JSON.stringify(error) never carries the driver's details.
            // A descriptor of no prototype: a polluted Object.prototype.get or .enumerable
            // cannot change what it says.
            let descriptor = Object::create(JsValue::NULL.unchecked_ref());
            let _ = Reflect::set(&descriptor, &"value".into(), &cause);
            let _ = Reflect::set(&descriptor, &"writable".into(), &JsValue::TRUE);
            let _ = Reflect::set(&descriptor, &"configurable".into(), &JsValue::TRUE);
            let _ = Reflect::define_property(
                error.unchecked_ref::<Object>(),
                &"cause".into(),
                &descriptor,
            );
        }
        error
    }

    /// For storage adapters: an `INVALID_CONFIG` error naming the option (`key`).
    #[wasm_bindgen(js_name = invalidConfig, skip_typescript)]
    pub fn invalid_config(key: &str, reason: &str) -> JsValue {
        to_js(&Error::InvalidConfig {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    }
}

#[wasm_bindgen(typescript_custom_section)]
const ALLY_ERROR_TS: &str = r#"
/** Every stable error code. A code may be added; none is renamed. */
export type AllyErrorCode =
  | "INVALID_INPUT" | "INVALID_CONFIG" | "UNKNOWN_TIER" | "TIER_RESTRICTED" | "NOT_FOUND"
  | "ALREADY_EXISTS" | "INSUFFICIENT_CREDITS" | "PROVISIONING_HELD" | "IDEMPOTENCY_MISMATCH"
  | "CONFLICT" | "FORBIDDEN" | "DUPLICATE_EMAIL" | "INVALID_RESELLER"
  | "STATUS_TRANSITION_DENIED" | "STORAGE_FAILED" | "MAIL_FAILED" | "RESELLER_INACTIVE";

/** The `details` of an `AllyError`, by its code. */
export interface AllyErrorDetailsByCode {
  /** `field` is the path of the value, e.g. `request.lines[2].quantity`. */
  INVALID_INPUT: { field: string; reason: string };
  /** `key` is the configuration path, e.g. `tiers.gold.discount`. */
  INVALID_CONFIG: { key: string; reason: string };
  UNKNOWN_TIER: { tier: string };
  TIER_RESTRICTED: { sku: string; tier: string; field: string };
  NOT_FOUND: { entity: string; key: string };
  ALREADY_EXISTS: { entity: string; field: string; value: string };
  CONFLICT: { entity: string; key: string; attempts: number };
  STORAGE_FAILED: { operation: string; reason: string };
  MAIL_FAILED: { reason: string };
  /** For a bulk provision, `items` holds one result code per item. */
  INSUFFICIENT_CREDITS: { reseller: string; balance: number; requested: number; items?: readonly string[] };
  PROVISIONING_HELD: { reseller: string };
  IDEMPOTENCY_MISMATCH: { key: string; reason: string };
  FORBIDDEN: { scope: string; target: string };
  STATUS_TRANSITION_DENIED: { entity: string; key: string; from: string; action: string };
  DUPLICATE_EMAIL: { entity: string; email: string };
  INVALID_RESELLER: { reseller: string; reason: string };
  RESELLER_INACTIVE: { reseller: string; status: string; reason?: string };
}

/** An `AllyError` of one code, its `details` typed for that code. */
export type AllyErrorOf<C extends AllyErrorCode> = AllyError & {
  readonly code: C;
  readonly details: Readonly<AllyErrorDetailsByCode[C]>;
};

/** Every `AllyError`, as a union on `code`: checking `error.code` narrows `error.details`. */
export type AnyAllyError = { [C in AllyErrorCode]: AllyErrorOf<C> }[AllyErrorCode];

/** What every function of the package throws or rejects with. */
export class AllyError extends Error {
  private constructor();
  /** `error instanceof AllyError` narrows to the union on `code`. */
  static [Symbol.hasInstance](value: unknown): value is AnyAllyError;
  /**
   * For storage adapters: a `STORAGE_FAILED` error whose message is safe to show a client, the
   * driver's own error kept as `cause` for the logs. Thrown from a storage method, its reason is
   * what the engine's own `STORAGE_FAILED` says.
   */
  static storageFailed(operation: string, reason: string, cause?: unknown): AllyErrorOf<"STORAGE_FAILED">;
  /** For storage adapters: an `INVALID_CONFIG` error naming the option (`key`). */
  static invalidConfig(key: string, reason: string): AllyErrorOf<"INVALID_CONFIG">;
  readonly name: "AllyError";
  /** Stable, machine-readable code. */
  readonly code: AllyErrorCode;
  /**
   * The HTTP status a service would answer with: 400 malformed input, 402 not enough credits,
   * 403 not allowed, 404 not found, 409 in the way of the record's state or of a concurrent
   * write, 422 well-formed but not acceptable; 500, 502, 503 for the host's configuration,
   * mailer and storage.
   */
  readonly httpStatus: 400 | 402 | 403 | 404 | 409 | 422 | 500 | 502 | 503;
  /** Names the field and the value. */
  readonly message: string;
  /** Structured context; its shape follows `code` (see `AllyErrorDetailsByCode`). */
  readonly details: Readonly<AllyErrorDetailsByCode[AllyErrorCode]>;
}
"#;

thread_local! {
    static PROTOTYPE: JsValue = make_prototype();
}

/// `AllyError.prototype`, chained to `Error.prototype` once per instance.
fn make_prototype() -> JsValue {
    let probe = JsValue::from(AllyError { _private: () });
    let prototype = Object::get_prototype_of(&probe);
    let error_prototype = Object::get_prototype_of(&js_sys::Error::new(""));
    Object::set_prototype_of(&prototype, &error_prototype);
    // Defined on the prototype as well, so `AllyError.prototype.name` reads right.
    let _ = Reflect::set(&prototype, &"name".into(), &"AllyError".into());
    prototype.into()
}

/// Builds the JavaScript error for an engine error.
pub fn to_js(error: &Error) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    js.set_name("AllyError");
    PROTOTYPE.with(|prototype| {
        if let Some(prototype) = prototype.dyn_ref::<Object>() {
            Object::set_prototype_of(&js, prototype);
        }
    });
    let details = Object::new();
    for (key, value) in error.details() {
        let value: JsValue = match value {
            Detail::Text(text) => text.into(),
            Detail::Number(n) => (n as f64).into(),
            Detail::Codes(codes) => codes
                .into_iter()
                .map(JsValue::from_str)
                .collect::<js_sys::Array>()
                .into(),
        };
        let _ = Reflect::set(&details, &key.into(), &value);
    }
    let code = error.code();
    let _ = Reflect::set(&js, &"code".into(), &code.as_str().into());
    let _ = Reflect::set(
        &js,
        &"httpStatus".into(),
        &JsValue::from(u32::from(code.http_status())),
    );
    let _ = Reflect::set(&js, &"details".into(), &details);
    js.into()
}

/// `Result<T, Error>` into the `Result<T, JsValue>` wasm-bindgen throws from.
pub trait OrThrow<T> {
    fn or_throw(self) -> Result<T, JsValue>;
}

impl<T> OrThrow<T> for Result<T, Error> {
    fn or_throw(self) -> Result<T, JsValue> {
        self.map_err(|e| to_js(&e))
    }
}

/// What a thrown JavaScript value says, for `STORAGE_FAILED` and `MAIL_FAILED` messages and
/// for a caller's value whose reading threw.
#[cfg(feature = "engine")]
pub fn describe(thrown: &JsValue) -> String {
    if let Some(text) = thrown.as_string() {
        return text;
    }
    // An adapter's own STORAGE_FAILED or MAIL_FAILED (`AllyError.storageFailed`): its reason,
    // which is safe to show, not the message the engine would wrap a second time.
    if let Some(reason) = adapter_reason(thrown) {
        return reason;
    }
    // Read through Reflect, whose throws are caught: a thrown value's `name` or `message` may
    // be a getter that throws, or a Proxy's trap (an uncaught throw here would leave the wasm
    // frames unwound mid-call).
    if thrown.is_object() || thrown.is_function() {
        let read = |key: &str| {
            js_sys::Reflect::get(thrown, &JsValue::from_str(key))
                .ok()
                .and_then(|v| v.as_string())
        };
        match (read("name"), read("message")) {
            (Some(name), Some(message)) => return format!("{name}: {message}"),
            (None, Some(message)) => return message,
            _ => {}
        }
    }
    js_sys::JSON::stringify(thrown)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| "a value was thrown that could not be read".to_owned())
}

/// The reason of an `AllyError` of code `STORAGE_FAILED` or `MAIL_FAILED` a host threw.
#[cfg(feature = "engine")]
fn adapter_reason(thrown: &JsValue) -> Option<String> {
    let own = |object: &JsValue, key: &str| super::input::own_property(object, key).ok();
    let code = own(thrown, "code")?.as_string()?;
    if code != "STORAGE_FAILED" && code != "MAIL_FAILED" {
        return None;
    }
    let details = own(thrown, "details")?;
    own(&details, "reason")?.as_string()
}
