//! Wallet checkpoints: the replayed state of a wallet at one point of its history, so that a
//! fresh instance resumes from it and replays only the entries after it.
//!
//! A checkpoint holds what the next decision needs and nothing that grows with the number of
//! entries: the length, the balance, the chain head, the low-credit crossing state and the
//! per-day totals of the trends (one line per calendar day with entries). The entries after it
//! must chain from its head; [`Wallet::resume`] starts a replay there. It is trusted as the
//! replay it stands for: the full audit replays the stream from the start and compares.

use serde::{Deserialize, Serialize};

use super::{parse_hash, IdSet, Wallet, GENESIS};
use crate::domain::analytics::{DayVolumes, Volume};
use crate::domain::catalog::hex;
use crate::domain::error::{Error, Result};
use crate::domain::money::Credits;

/// The layout version a checkpoint is written in.
pub const CHECKPOINT_VERSION: u32 = 1;

/// A wallet's state after its first `length` entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub length: u64,
    pub balance: Credits,
    pub head: [u8; 32],
    /// Sequence of the debit that took the balance below the threshold, while it stays below.
    pub low_since: Option<u64>,
    pub volumes: DayVolumes,
}

/// One day of [`DayVolumes`] as stored: `[day, credited, debited, entries]`.
type DayLine = (i64, i128, i128, u64);

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Stored {
    v: u32,
    length: u64,
    balance: u64,
    head: String,
    low_since: Option<u64>,
    days: Vec<DayLine>,
}

impl Checkpoint {
    /// The state of an empty wallet.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            length: 0,
            balance: Credits::ZERO,
            head: GENESIS,
            low_since: None,
            volumes: DayVolumes::default(),
        }
    }

    /// The checkpoint as the JSON object stored inside the wallet record.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let stored = Stored {
            v: CHECKPOINT_VERSION,
            length: self.length,
            balance: self.balance.get(),
            head: hex(&self.head),
            low_since: self.low_since,
            days: self
                .volumes
                .days()
                .map(|(day, v)| (day, v.credited, v.debited, v.entries))
                .collect(),
        };
        // A struct of numbers and strings always serialises.
        serde_json::to_value(stored).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a stored checkpoint; `INVALID_INPUT` naming `path` when it is not one.
    pub fn from_json(value: &serde_json::Value, path: &str) -> Result<Self> {
        let stored = Stored::deserialize(value)
            .map_err(|e| Error::invalid(path, format!("not a wallet checkpoint: {e}")))?;
        if stored.v != CHECKPOINT_VERSION {
            return Err(Error::invalid(
                path,
                format!("checkpoint layout {} is not {CHECKPOINT_VERSION}", stored.v),
            ));
        }
        let head = parse_hash(&stored.head)
            .ok_or_else(|| Error::invalid(path, "head is not 64 lowercase hexadecimal digits"))?;
        let balance = Credits::new(stored.balance)
            .ok_or_else(|| Error::invalid(path, "balance is beyond 2^53 - 1"))?;
        let fits = stored
            .low_since
            .is_none_or(|s| s >= 1 && s <= stored.length)
            && (stored.length > 0 || (balance == Credits::ZERO && head == GENESIS));
        if !fits {
            return Err(Error::invalid(
                path,
                "lowSince, balance and head do not fit the length",
            ));
        }
        let volumes = volumes_from(stored.days, stored.length, path)?;
        Ok(Self {
            length: stored.length,
            balance,
            head,
            low_since: stored.low_since,
            volumes,
        })
    }
}

/// The days of a stored checkpoint, each within years 0000 to 9999, with at least one entry,
/// and sums no larger than its entries allow; together they must count the checkpoint's
/// length. Anything else is not a checkpoint the engine wrote.
fn volumes_from(days: Vec<DayLine>, length: u64, path: &str) -> Result<DayVolumes> {
    // 0000-01-01 and 9999-12-31 as days since the epoch.
    const FIRST_DAY: i64 = -719_528;
    const LAST_DAY: i64 = 2_932_896;
    let mut counted: u64 = 0;
    let mut previous: Option<i64> = None;
    for (i, &(day, credited, debited, entries)) in days.iter().enumerate() {
        let most = i128::from(entries) * i128::from(Credits::MAX.get());
        let sound = (FIRST_DAY..=LAST_DAY).contains(&day)
            && previous.is_none_or(|p| p < day)
            && entries >= 1
            && (0..=most).contains(&credited)
            && (0..=most).contains(&debited);
        if !sound {
            return Err(Error::invalid(
                format!("{path}.days[{i}]"),
                "not a day of this wallet's totals",
            ));
        }
        previous = Some(day);
        counted = counted
            .checked_add(entries)
            .ok_or_else(|| Error::overflow(format!("{path}.days")))?;
    }
    if counted != length {
        return Err(Error::invalid(
            format!("{path}.days"),
            format!("the days count {counted} entries, the checkpoint {length}"),
        ));
    }
    Ok(DayVolumes::from_days(days.into_iter().map(
        |(day, credited, debited, entries)| {
            let volume = Volume {
                credited,
                debited,
                entries,
            };
            (day, volume)
        },
    )))
}

impl Wallet {
    /// A live wallet resumed from `checkpoint`: the entries after it replay and are checked
    /// (sequence, balance, chain, batches, wallet id) as they would be from the start. It keeps
    /// no set of entry ids or idempotency keys, so its memory does not grow with the history:
    /// the storage claims keys atomically with the append, and the full audit checks ids.
    #[must_use]
    pub fn resume(id: String, threshold: Credits, checkpoint: &Checkpoint) -> Self {
        let balance = i128::from(checkpoint.balance.get());
        Self {
            id: Some(id),
            length: checkpoint.length,
            balance,
            recorded: balance,
            head: checkpoint.head,
            last_sequence: checkpoint.length,
            ids: IdSet::default(),
            keys: std::collections::BTreeMap::new(),
            track_sets: false,
            open_batch: None,
            threshold: i128::from(threshold.get()),
            low_since: checkpoint.low_since,
            // Read from the checkpoint's last entry, which a cold start checks anyway.
            last_at_ms: None,
            violations: Vec::new(),
            violation_total: 0,
        }
    }

    /// The checkpoint of this wallet's state, with the trends' `volumes`: `None` while the
    /// history replayed so far is broken or ends inside a bulk provision (a checkpoint only
    /// ever stands for a sound history at an append's boundary).
    #[must_use]
    pub fn checkpoint(&self, volumes: &DayVolumes) -> Option<Checkpoint> {
        if !self.is_valid() || self.open_batch.is_some() {
            return None;
        }
        Some(Checkpoint {
            length: self.length,
            balance: Credits::new(u64::try_from(self.balance).ok()?)?,
            head: self.head,
            low_since: self.low_since,
            volumes: volumes.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::{decide_provision, decide_top_up, Context, Movement};

    fn c(n: u64) -> Credits {
        Credits::new(n).unwrap_or_default()
    }

    fn ctx(at_ms: i64) -> Context<'static> {
        Context {
            wallet_id: "rs_1",
            reseller_id: "rs_1",
            at_ms,
            threshold: c(500),
            idempotency_key: None,
        }
    }

    /// Applies `n` alternating top-ups and provisions to `wallet`, keeping `volumes`.
    fn grow(wallet: &mut Wallet, volumes: &mut DayVolumes, n: u64, start: u64) {
        for i in start..start + n {
            let at = 1_767_225_600_000 + (i as i64) * 3_600_000;
            let movement = |amount| Movement {
                amount: c(amount),
                memo: None,
            };
            let decision = if i % 2 == 0 {
                decide_top_up(wallet, ctx(at), movement(300), format!("le_{i}"))
            } else {
                decide_provision(wallet, ctx(at), movement(250), format!("le_{i}"), false)
            }
            .unwrap_or_else(|e| panic!("{e}"));
            for entry in &decision.entries {
                let hash = entry.chain_hash(&wallet.head);
                assert_eq!(hash, entry.hash);
                wallet.apply_trusted(entry);
                volumes.add(entry.at_ms, i % 2 == 0, entry.amount);
            }
        }
    }

    #[test]
    fn a_resumed_wallet_decides_what_the_full_replay_decides() {
        let mut full = Wallet::new(Some("rs_1".into()), 0, c(500));
        let mut volumes = DayVolumes::default();
        grow(&mut full, &mut volumes, 40, 0);
        let checkpoint = full
            .checkpoint(&volumes)
            .unwrap_or_else(|| panic!("no checkpoint"));
        let text = checkpoint.to_json().to_string();
        let read = serde_json::from_str(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| Checkpoint::from_json(&v, "checkpoint").map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, checkpoint);
        let mut resumed = Wallet::resume("rs_1".into(), c(500), &read);
        let mut resumed_volumes = read.volumes.clone();
        grow(&mut full, &mut volumes, 25, 40);
        grow(&mut resumed, &mut resumed_volumes, 25, 40);
        assert!(resumed.is_valid(), "{:?}", resumed.violations);
        assert_eq!(
            (
                resumed.length,
                resumed.balance,
                resumed.head,
                resumed.low_since
            ),
            (full.length, full.balance, full.head, full.low_since)
        );
        assert_eq!(resumed_volumes, volumes);
        assert!(resumed.ids.text.is_empty() && resumed.keys.is_empty());
    }

    #[test]
    fn a_tail_that_does_not_chain_from_the_checkpoint_is_a_violation() {
        let mut full = Wallet::new(Some("rs_1".into()), 0, c(500));
        let mut volumes = DayVolumes::default();
        grow(&mut full, &mut volumes, 10, 0);
        let mut checkpoint = full
            .checkpoint(&volumes)
            .unwrap_or_else(|| panic!("no checkpoint"));
        let mut next = full.clone();
        let mut next_volumes = volumes.clone();
        grow(&mut next, &mut next_volumes, 1, 10);
        checkpoint.head[0] ^= 1;
        let mut resumed = Wallet::resume("rs_1".into(), c(500), &checkpoint);
        let entry = decide_top_up(
            &full,
            ctx(1_767_225_600_000),
            Movement {
                amount: c(5),
                memo: None,
            },
            "le_x".into(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .entries
        .remove(0);
        resumed.apply(&entry, &super::super::EntryFlaws::default());
        assert_eq!(
            resumed.violations.first().map(|v| v.code.as_str()),
            Some("HASH_MISMATCH")
        );
    }

    #[test]
    fn malformed_checkpoints_are_refused_by_name() {
        let good = Checkpoint::empty().to_json();
        let cases: &[(&str, serde_json::Value)] = &[
            ("v", serde_json::json!(2)),
            ("head", serde_json::json!("zz")),
            ("balance", serde_json::json!(9_007_199_254_740_992u64)),
            ("lowSince", serde_json::json!(3)),
            ("length", serde_json::json!(-1)),
            ("extra", serde_json::json!(1)),
        ];
        for (key, value) in cases {
            let mut bad = good.clone();
            bad[*key] = value.clone();
            let refused = Checkpoint::from_json(&bad, "wallet.checkpoint");
            assert!(
                matches!(&refused, Err(Error::InvalidInput { field, .. }) if field == "wallet.checkpoint"),
                "{key}: {refused:?}"
            );
        }
        assert_eq!(Checkpoint::from_json(&good, "c").map(|c| c.length), Ok(0));
        // Days a wallet could not have: out of years 0000-9999, out of order, negative sums,
        // more than the entries allow, or not adding up to the length.
        let mut one = Checkpoint::empty().to_json();
        one["length"] = serde_json::json!(1);
        one["head"] = serde_json::json!("11".repeat(32));
        for (days, field) in [
            (serde_json::json!([[100_000_000, 1, 0, 1]]), "c.days[0]"),
            (serde_json::json!([[5, 1, 0, 1], [5, 1, 0, 1]]), "c.days[1]"),
            (serde_json::json!([[5, -1, 0, 1]]), "c.days[0]"),
            (
                serde_json::json!([[5, 9_007_199_254_740_992u64, 0, 1]]),
                "c.days[0]",
            ),
            (serde_json::json!([[5, 1, 0, 0]]), "c.days[0]"),
            (serde_json::json!([[5, 1, 0, 2]]), "c.days"),
            (serde_json::json!([]), "c.days"),
        ] {
            let mut bad = one.clone();
            bad["days"] = days.clone();
            let refused = Checkpoint::from_json(&bad, "c");
            assert!(
                matches!(&refused, Err(Error::InvalidInput { field: f, .. }) if f == field),
                "{days}: {refused:?}"
            );
        }
        one["days"] = serde_json::json!([[20_000, 1, 0, 1]]);
        assert!(Checkpoint::from_json(&one, "c").is_ok());
    }
}
