//! Identifiers: random, non-sequential, and reproducible from a seed.
//!
//! The domain takes no randomness from the world; the engine seeds an [`IdSource`] once (from the
//! runtime's cryptographic source in production, from a fixed seed in tests and simulations).

/// SplitMix64: small, fast, and statistically sound for identifiers (not for secrets).
#[derive(Clone, Debug)]
pub struct IdSource {
    state: u64,
}

/// Crockford's base 32: no I, L, O or U, so a refid read aloud is not misread.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl IdSource {
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `prefix` followed by `chars` base-32 characters (5 random bits each, at most 24).
    pub fn token(&mut self, prefix: &str, chars: usize, lowercase: bool) -> String {
        let mut out = String::with_capacity(prefix.len() + chars);
        out.push_str(prefix);
        let mut bits = self.next_u64();
        let mut left = 12;
        for _ in 0..chars.min(24) {
            if left == 0 {
                bits = self.next_u64();
                left = 12;
            }
            let c = char::from(CROCKFORD[(bits & 31) as usize]);
            out.push(if lowercase { c.to_ascii_lowercase() } else { c });
            bits >>= 5;
            left -= 1;
        }
        out
    }

    /// An internal reseller id: `rs_` and 16 characters (80 bits).
    pub fn reseller_id(&mut self) -> String {
        self.token("rs_", 16, true)
    }

    /// A reseller application id: `ap_` and 16 characters (80 bits).
    pub fn application_id(&mut self) -> String {
        self.token("ap_", 16, true)
    }

    /// A payment id: `pm_` and 16 characters (80 bits).
    pub fn payment_id(&mut self) -> String {
        self.token("pm_", 16, true)
    }

    /// A commission payment id: `cp_` and 16 characters (80 bits).
    pub fn commission_payment_id(&mut self) -> String {
        self.token("cp_", 16, true)
    }

    /// A payout batch id: `pb_` and 16 characters (80 bits).
    pub fn batch_id(&mut self) -> String {
        self.token("pb_", 16, true)
    }

    /// A client id: `cl_` and 16 characters (80 bits).
    pub fn client_id(&mut self) -> String {
        self.token("cl_", 16, true)
    }

    /// A public client reference: `prefix` and 10 characters (50 bits).
    pub fn client_refid(&mut self, prefix: &str) -> String {
        self.token(prefix, 10, false)
    }

    /// A ledger entry id: `le_` and 16 characters (80 bits).
    pub fn entry_id(&mut self) -> String {
        self.token("le_", 16, true)
    }

    /// A public reseller reference: `RS-` and 10 characters (50 bits).
    pub fn reseller_refid(&mut self) -> String {
        self.token("RS-", 10, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_reproducible_and_distinct() {
        let mut a = IdSource::new(42);
        let mut b = IdSource::new(42);
        assert_eq!(a.reseller_id(), b.reseller_id());
        let seen: HashSet<String> = (0..10_000).map(|_| a.reseller_refid()).collect();
        assert_eq!(seen.len(), 10_000);
        let refid = a.reseller_refid();
        assert!(refid.starts_with("RS-") && refid.len() == 13, "{refid}");
        assert!(refid[3..].bytes().all(|c| CROCKFORD.contains(&c)));
        // Not sequential: consecutive refids differ in more than their last character.
        let (x, y) = (a.reseller_refid(), a.reseller_refid());
        assert_ne!(x[3..12], y[3..12]);
    }
}
