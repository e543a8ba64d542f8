//! Signed balance attestations for JavaScript: `verifyAttestation` (pure, in both modules, for
//! edge functions) and, with the engine, `ally.attestWallet`.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;

use super::error::OrThrow;
use super::input::{self, type_name};
use crate::domain::ledger::attestation::{
    self, Attestation, AttestationKey, Check, MAX_AGE_MAX_MS,
};
use crate::domain::record::Fields;
use crate::domain::reseller::iso_time;
use crate::domain::Error;

#[wasm_bindgen(typescript_custom_section)]
const ATTESTATION_TS: &str = r#"
/** A wallet's state signed by the origin with a host key (HMAC-SHA256). Plain JSON: send it anywhere. */
export interface WalletAttestation {
  version: 1;
  walletId: string;
  /** How many ledger entries the wallet held. */
  length: number;
  balance: number;
  /** The hash of the wallet's last entry, hexadecimal (64 zeros for an empty wallet). */
  head: string;
  /** ISO-8601 in UTC. */
  issuedAt: string;
  /** HMAC-SHA256 of the fields above, hexadecimal. */
  signature: string;
}

/** A host key: a string (its UTF-8 bytes) or bytes, 32 to 1 024 of them. */
export type AttestationKeyInput = string | Uint8Array;

export interface VerifyAttestationOptions {
  /** The oldest attestation accepted, in milliseconds (1 to 30 days' worth). */
  maxAgeMs: number;
  /** The wallet the request is about: an attestation of any other is refused. */
  walletId: string;
  /** The verifier's time (default: the runtime's clock). */
  now?: Date | string | number;
}

export interface AttestationVerification {
  valid: boolean;
  /** Why it is not valid, or null. */
  reason: null | "SIGNATURE_MISMATCH" | "EXPIRED" | "ISSUED_IN_FUTURE" | "WALLET_MISMATCH";
  walletId: string;
  balance: number;
  length: number;
  head: string;
  issuedAt: string;
  /** How old it is at `now`, in milliseconds (negative when issued ahead of the verifier's clock). */
  ageMs: number;
}
"#;

/// Reads a host key: a string's UTF-8 bytes, or a `Uint8Array`'s.
pub(super) fn key_arg(value: &JsValue) -> Result<AttestationKey, Error> {
    let bytes = if let Some(text) = value.as_string() {
        text.into_bytes()
    } else if let Some(array) = input::typed::<Uint8Array>(value) {
        if array.length() as usize > attestation::KEY_LEN_MAX {
            return Err(Error::invalid(
                "key",
                format!("a key is at most {} bytes", attestation::KEY_LEN_MAX),
            ));
        }
        array.to_vec()
    } else {
        return Err(Error::invalid(
            "key",
            format!(
                "expected a string or a Uint8Array, got {}",
                type_name(value)
            ),
        ));
    };
    AttestationKey::new(&bytes, "key")
}

/// The options of `verifyAttestation`: `maxAgeMs` and `walletId`, and the optional `now`.
fn check_args(options: &JsValue) -> Result<(i64, String, i64), Error> {
    let mut o = Fields::new(input::to_json_dated(options, "options")?, "options")?;
    let max_age = o.count("maxAgeMs")?;
    let wallet_id = o.string("walletId")?;
    let now = o.take("now").map(now_ms).transpose()?;
    o.finish(&["maxAgeMs", "walletId", "now"])?;
    let max_age_ms = i64::try_from(max_age)
        .ok()
        .filter(|ms| (1..=MAX_AGE_MAX_MS).contains(ms))
        .ok_or_else(|| {
            Error::invalid(
                "options.maxAgeMs",
                format!("expected 1 to {MAX_AGE_MAX_MS} milliseconds, got {max_age}"),
            )
        })?;
    // The runtime's clock answers whole milliseconds within range.
    let now_ms = now.unwrap_or(js_sys::Date::now() as i64);
    Ok((max_age_ms, wallet_id, now_ms))
}

/// `options.now`: a `Date` (read as its ISO-8601 text), epoch milliseconds, or ISO-8601 as the
/// engine writes it.
fn now_ms(value: serde_json::Value) -> Result<i64, Error> {
    let refused = || {
        Error::invalid(
            "options.now",
            "expected a Date, epoch milliseconds or YYYY-MM-DDTHH:MM:SS.sssZ",
        )
    };
    match value {
        serde_json::Value::String(text) => iso_time::parse_millis(&text).ok_or_else(refused),
        serde_json::Value::Number(n) => n
            .as_i64()
            .filter(|ms| ms.unsigned_abs() <= 8_640_000_000_000_000)
            .ok_or_else(refused),
        _ => Err(refused()),
    }
}

/// Checks a wallet attestation from the origin against the host key, without the history:
/// `valid` only when the signature is the key's over every field, the attestation is of
/// `walletId` (required: a request must say whose balance it relies on) and at most
/// `maxAgeMs` old. A malformed attestation, key or option is
/// `INVALID_INPUT`; a well-formed one that fails is `valid: false` with the `reason`.
#[wasm_bindgen(js_name = verifyAttestation, unchecked_return_type = "AttestationVerification")]
pub fn verify_attestation(
    #[wasm_bindgen(unchecked_param_type = "WalletAttestation")] attestation: JsValue,
    #[wasm_bindgen(unchecked_param_type = "AttestationKeyInput")] key: JsValue,
    #[wasm_bindgen(unchecked_param_type = "VerifyAttestationOptions")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let json = input::to_json(&attestation, "attestation").or_throw()?;
    let attestation = Attestation::from_json(json, "attestation").or_throw()?;
    let key = key_arg(&key).or_throw()?;
    let (max_age_ms, wallet_id, now_ms) = check_args(&options).or_throw()?;
    let check = Check {
        now_ms,
        max_age_ms,
        wallet_id: &wallet_id,
    };
    let verdict = attestation::verify(&attestation, &key, check);
    // Both times are within chrono's range (about ±2^48 ms), so the difference fits an i64.
    let age_ms = now_ms.saturating_sub(attestation.issued_at_ms);
    let mut out = attestation.to_json();
    out["valid"] = verdict.is_ok().into();
    out["reason"] = verdict.err().map(|r| r.as_str()).into();
    out["ageMs"] = age_ms.into();
    if let Some(fields) = out.as_object_mut() {
        fields.remove("version");
        fields.remove("signature");
    }
    super::codec::to_plain(&out)
}
