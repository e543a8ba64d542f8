//! Signed balance attestations: the origin signs a wallet's state (length, balance, chain head,
//! time) with a host key, and anyone holding the key (an edge function) checks a reseller's
//! balance without the history.
//!
//! The signature is HMAC-SHA256 over a fixed binary layout (below), so that no JSON
//! serialisation detail can make two runtimes disagree. An attestation says what the wallet
//! held when it was issued; `maxAgeMs` bounds how stale an answer the verifier accepts.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::parse_hash;
use crate::domain::catalog::hex;
use crate::domain::error::{Error, Result};
use crate::domain::money::Credits;
use crate::domain::reseller::iso_time;

/// The layout version the signature covers.
pub const ATTESTATION_VERSION: u32 = 1;
/// The shortest key accepted: as long as the hash (RFC 2104's recommendation).
pub const KEY_LEN_MIN: usize = 32;
/// The longest key accepted.
pub const KEY_LEN_MAX: usize = 1024;
/// How far in the future an attestation may claim to be issued (clocks of origin and edge
/// differ); past it, it is refused as issued in the future.
pub const CLOCK_SKEW_MAX_MS: i64 = 60_000;
/// The longest `maxAgeMs` a verifier may ask for: 30 days.
pub const MAX_AGE_MAX_MS: i64 = 30 * 86_400_000;
const DOMAIN: &[u8] = b"ally-engine attestation\0";

type HmacSha256 = Hmac<Sha256>;

/// A host key: [`KEY_LEN_MIN`] to [`KEY_LEN_MAX`] bytes, kept as the keyed MAC state.
#[derive(Clone)]
pub struct AttestationKey {
    mac: HmacSha256,
    len: usize,
}

impl AttestationKey {
    pub fn new(bytes: &[u8], field: &str) -> Result<Self> {
        let refused = || {
            Error::invalid(
                field,
                format!(
                    "a key is {KEY_LEN_MIN} to {KEY_LEN_MAX} bytes, got {}",
                    bytes.len()
                ),
            )
        };
        if !(KEY_LEN_MIN..=KEY_LEN_MAX).contains(&bytes.len()) {
            return Err(refused());
        }
        let mac = HmacSha256::new_from_slice(bytes).map_err(|_| refused())?;
        Ok(Self {
            mac,
            len: bytes.len(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

impl std::fmt::Debug for AttestationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AttestationKey({} bytes)", self.len)
    }
}

/// A wallet's state as the origin signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    pub wallet_id: String,
    /// How many entries the wallet held.
    pub length: u64,
    pub balance: Credits,
    /// The hash of its last entry (all zero for an empty wallet).
    pub head: [u8; 32],
    pub issued_at_ms: i64,
    pub signature: [u8; 32],
}

/// Why an attestation is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The signature is not the key's over these fields: tampered, or another key.
    SignatureMismatch,
    /// Issued longer ago than `maxAgeMs`.
    Expired,
    /// Issued later than the verifier's clock allows.
    IssuedInFuture,
    /// It attests another wallet than the one asked about.
    WalletMismatch,
}

impl Refusal {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SignatureMismatch => "SIGNATURE_MISMATCH",
            Self::Expired => "EXPIRED",
            Self::IssuedInFuture => "ISSUED_IN_FUTURE",
            Self::WalletMismatch => "WALLET_MISMATCH",
        }
    }
}

/// What a verifier asks.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    pub now_ms: i64,
    pub max_age_ms: i64,
    /// The wallet the verifier asks about: an attestation of any other is refused.
    pub wallet_id: &'a str,
}

/// The bytes the signature covers: a domain tag, the version, the wallet id (u32 length then
/// UTF-8), length u64, balance u64, head, issued-at i64 (ms), little-endian.
fn message(a: &Attestation) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + 4 + 4 + a.wallet_id.len() + 56);
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(&ATTESTATION_VERSION.to_le_bytes());
    // Wallet ids are short engine ids; one past 4 GiB cannot be held by a wasm32 host.
    let id_len = u32::try_from(a.wallet_id.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(a.wallet_id.as_bytes());
    out.extend_from_slice(&a.length.to_le_bytes());
    out.extend_from_slice(&a.balance.get().to_le_bytes());
    out.extend_from_slice(&a.head);
    out.extend_from_slice(&a.issued_at_ms.to_le_bytes());
    out
}

/// Signs a wallet's state.
#[must_use]
pub fn sign(
    wallet_id: &str,
    length: u64,
    balance: Credits,
    head: [u8; 32],
    issued_at_ms: i64,
    key: &AttestationKey,
) -> Attestation {
    let mut attestation = Attestation {
        wallet_id: wallet_id.to_owned(),
        length,
        balance,
        head,
        issued_at_ms,
        signature: [0; 32],
    };
    let mut mac = key.mac();
    mac.update(&message(&attestation));
    attestation.signature = mac.finalize().into_bytes().into();
    attestation
}

/// Checks an attestation: the signature first (in constant time), then the wallet and the age.
pub fn verify(
    attestation: &Attestation,
    key: &AttestationKey,
    check: Check<'_>,
) -> std::result::Result<(), Refusal> {
    let mut mac = key.mac();
    mac.update(&message(attestation));
    mac.verify_slice(&attestation.signature)
        .map_err(|_| Refusal::SignatureMismatch)?;
    if check.wallet_id != attestation.wallet_id {
        return Err(Refusal::WalletMismatch);
    }
    let age = i128::from(check.now_ms) - i128::from(attestation.issued_at_ms);
    if age < -i128::from(CLOCK_SKEW_MAX_MS) {
        return Err(Refusal::IssuedInFuture);
    }
    if age > i128::from(check.max_age_ms) {
        return Err(Refusal::Expired);
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Stored {
    version: u32,
    wallet_id: String,
    length: u64,
    balance: u64,
    head: String,
    issued_at: String,
    signature: String,
}

impl Attestation {
    /// The attestation as the plain JSON object handed to hosts.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": ATTESTATION_VERSION,
            "walletId": self.wallet_id,
            "length": self.length,
            "balance": self.balance.get(),
            "head": hex(&self.head),
            "issuedAt": iso_time::format_millis(self.issued_at_ms),
            "signature": hex(&self.signature),
        })
    }

    /// Reads an attestation a host hands over; `INVALID_INPUT` naming the field when it is not
    /// one. A well-formed attestation with a wrong signature reads, and fails [`verify`].
    pub fn from_json(value: serde_json::Value, path: &str) -> Result<Self> {
        let stored = Stored::deserialize(value)
            .map_err(|e| Error::invalid(path, format!("not an attestation: {e}")))?;
        if stored.version != ATTESTATION_VERSION {
            return Err(Error::invalid(
                format!("{path}.version"),
                format!("expected {ATTESTATION_VERSION}, got {}", stored.version),
            ));
        }
        let hash = |text: &str, field: &str| {
            parse_hash(text).ok_or_else(|| {
                Error::invalid(
                    format!("{path}.{field}"),
                    "expected 64 lowercase hexadecimal digits",
                )
            })
        };
        let balance = Credits::new(stored.balance)
            .ok_or_else(|| Error::invalid(format!("{path}.balance"), "beyond 2^53 - 1"))?;
        let issued_at_ms = iso_time::parse_millis(&stored.issued_at).ok_or_else(|| {
            Error::invalid(
                format!("{path}.issuedAt"),
                "expected the ISO-8601 time it was issued with (YYYY-MM-DDTHH:MM:SS.sssZ)",
            )
        })?;
        Ok(Self {
            head: hash(&stored.head, "head")?,
            signature: hash(&stored.signature, "signature")?,
            wallet_id: stored.wallet_id,
            length: stored.length,
            balance,
            issued_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AttestationKey {
        AttestationKey::new(&[byte; 32], "key").unwrap_or_else(|e| panic!("{e}"))
    }

    fn credits(n: u64) -> Credits {
        Credits::new(n).unwrap_or_default()
    }

    const NOW: i64 = 1_780_000_000_000;

    fn check(max_age_ms: i64) -> Check<'static> {
        Check {
            now_ms: NOW,
            max_age_ms,
            wallet_id: "rs_1",
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2 of RFC 4231 ("Jefe"), through the same MAC the attestations use.
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap_or_else(|e| panic!("{e}"));
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_signed_state_verifies_and_every_field_is_covered() {
        let a = sign("rs_1", 42, credits(1_500), [7; 32], NOW - 1_000, &key(1));
        assert_eq!(verify(&a, &key(1), check(60_000)), Ok(()));
        let json = a.to_json();
        let read = Attestation::from_json(json, "attestation").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, a);
        let tampered: [(&str, Attestation); 5] = [
            (
                "walletId",
                Attestation {
                    wallet_id: "rs_2".into(),
                    ..a.clone()
                },
            ),
            (
                "length",
                Attestation {
                    length: 43,
                    ..a.clone()
                },
            ),
            (
                "balance",
                Attestation {
                    balance: credits(1_501),
                    ..a.clone()
                },
            ),
            (
                "head",
                Attestation {
                    head: [8; 32],
                    ..a.clone()
                },
            ),
            (
                "issuedAt",
                Attestation {
                    issued_at_ms: NOW,
                    ..a.clone()
                },
            ),
        ];
        for (field, t) in tampered {
            let of_itself = Check {
                wallet_id: &t.wallet_id,
                ..check(60_000)
            };
            assert_eq!(
                verify(&t, &key(1), of_itself),
                Err(Refusal::SignatureMismatch),
                "{field}"
            );
        }
        assert_eq!(
            verify(&a, &key(2), check(60_000)),
            Err(Refusal::SignatureMismatch)
        );
    }

    #[test]
    fn age_skew_and_wallet_are_checked() {
        let at = |ms| sign("rs_1", 1, credits(1), [0; 32], ms, &key(1));
        assert_eq!(
            verify(&at(NOW - 60_001), &key(1), check(60_000)),
            Err(Refusal::Expired)
        );
        assert_eq!(verify(&at(NOW - 60_000), &key(1), check(60_000)), Ok(()));
        assert_eq!(
            verify(&at(NOW + CLOCK_SKEW_MAX_MS + 1), &key(1), check(60_000)),
            Err(Refusal::IssuedInFuture)
        );
        let other = Check {
            wallet_id: "rs_2",
            ..check(60_000)
        };
        assert_eq!(
            verify(&at(NOW), &key(1), other),
            Err(Refusal::WalletMismatch)
        );
    }

    #[test]
    fn keys_and_malformed_attestations_are_refused_by_name() {
        for len in [0, 31, 1025] {
            assert!(
                AttestationKey::new(&vec![1; len], "key").is_err(),
                "{len} bytes"
            );
        }
        let good = sign("rs_1", 1, credits(1), [0; 32], NOW, &key(1)).to_json();
        let cases: &[(&str, serde_json::Value, &str)] = &[
            ("version", serde_json::json!(2), "attestation.version"),
            ("head", serde_json::json!("00"), "attestation.head"),
            (
                "signature",
                serde_json::json!("zz"),
                "attestation.signature",
            ),
            ("balance", serde_json::json!(1.5), "attestation"),
            (
                "issuedAt",
                serde_json::json!("yesterday"),
                "attestation.issuedAt",
            ),
            ("extra", serde_json::json!(1), "attestation"),
        ];
        for (key, value, field) in cases {
            let mut bad = good.clone();
            bad[*key] = value.clone();
            let refused = Attestation::from_json(bad, "attestation");
            assert!(
                matches!(&refused, Err(Error::InvalidInput { field: f, .. }) if f == field),
                "{key}: {refused:?}"
            );
        }
    }
}
