//! Analytics over time: buckets by day, month or year (keys `YYYY-MM-DD`, `YYYY-MM`, `YYYY`, in
//! UTC), every bucket of a period present even when empty, per-day credit volumes a wallet keeps
//! as it replays, and percentages that add up to exactly 100.00.
//!
//! Periods are whole UTC days: analytics answer "how much on which day", never "how much before
//! 14:05", so a wallet's history can be held as one total per day however long it grows.

use std::collections::BTreeMap;

use super::commission::allocate;
use super::error::{Error, Result};
use super::reseller::iso_time::civil_from_days;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// The most buckets one trend may have (about 270 years of days).
pub const BUCKETS_MAX: usize = 100_000;

/// The UTC day (days since 1970-01-01) an instant falls on.
#[must_use]
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// How a trend groups its days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Interval {
    Daily,
    #[default]
    Monthly,
    Yearly,
}

impl Interval {
    /// The interval's name, as the bindings spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }

    /// Where a day falls: a day, month or year number, in order.
    fn bucket(self, day: i64) -> i64 {
        match self {
            Self::Daily => day,
            Self::Monthly => {
                let (y, m, _) = civil_from_days(day);
                y * 12 + m - 1
            }
            Self::Yearly => civil_from_days(day).0,
        }
    }

    /// The key of a bucket number: `YYYY-MM-DD`, `YYYY-MM` or `YYYY`.
    fn key(self, bucket: i64) -> String {
        match self {
            Self::Daily => {
                let (y, m, d) = civil_from_days(bucket);
                format!("{y:04}-{m:02}-{d:02}")
            }
            Self::Monthly => {
                let (y, m) = (bucket.div_euclid(12), bucket.rem_euclid(12) + 1);
                format!("{y:04}-{m:02}")
            }
            Self::Yearly => format!("{bucket:04}"),
        }
    }
}

/// A period of whole UTC days, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Days {
    pub first: i64,
    pub last: i64,
}

impl Days {
    /// The days from `first` to `last`; `INVALID_INPUT` on `end` when `last` comes first.
    pub fn new(first: i64, last: i64) -> Result<Self> {
        if last < first {
            return Err(Error::invalid("end", "must not be before start"));
        }
        Ok(Self { first, last })
    }

    /// Every day there is: for the figures that take an optional period.
    pub const ALL: Self = Self {
        first: i64::MIN,
        last: i64::MAX,
    };

    #[must_use]
    pub fn contains(self, day: i64) -> bool {
        day >= self.first && day <= self.last
    }
}

/// How many buckets `days` makes at `interval`; `INVALID_INPUT` on `end` past
/// [`BUCKETS_MAX`]. A trend's callers check it before they read anything.
pub fn bucket_count(days: Days, interval: Interval) -> Result<usize> {
    let span = interval.bucket(days.last) - interval.bucket(days.first);
    let count = usize::try_from(span + 1).unwrap_or(usize::MAX);
    if count > BUCKETS_MAX {
        return Err(Error::invalid(
            "end",
            format!("the period has more than {BUCKETS_MAX} buckets; choose a longer interval"),
        ));
    }
    Ok(count)
}

/// Sums of `(day, amount)` per bucket over `days`, oldest first, every bucket present; days
/// outside the period are left out.
pub fn trend(
    events: impl IntoIterator<Item = (i64, i128)>,
    days: Days,
    interval: Interval,
) -> Result<Vec<(String, i128)>> {
    let count = bucket_count(days, interval)?;
    let first = interval.bucket(days.first);
    let mut sums = vec![0i128; count];
    for (day, amount) in events {
        if days.contains(day) {
            if let Ok(slot) = usize::try_from(interval.bucket(day) - first) {
                sums[slot] = sums[slot]
                    .checked_add(amount)
                    .ok_or_else(|| Error::overflow("trend"))?;
            }
        }
    }
    Ok(sums
        .into_iter()
        .zip(first..)
        .map(|(v, bucket)| (interval.key(bucket), v))
        .collect())
}

/// Credits moved through a wallet on one day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Volume {
    /// Credits added (top-ups): what the network distributed.
    pub credited: i128,
    /// Credits spent (provisions).
    pub debited: i128,
    /// How many entries.
    pub entries: u64,
}

/// A wallet's history as one [`Volume`] per day: kept up to date as the wallet replays its
/// entries, so trends over a long history cost one step per day, not per entry.
///
/// Its sums cannot overflow: every amount is at most 2^53 − 1 and there are at most 2^64
/// entries (a checkpoint's days are checked to add up to its length when read back), so a
/// total is below 2^117, far inside `i128`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayVolumes {
    days: BTreeMap<i64, Volume>,
}

impl DayVolumes {
    /// Counts one entry: `credit` for a top-up, otherwise a provision.
    pub fn add(&mut self, at_ms: i64, credit: bool, amount: i64) {
        let volume = self.days.entry(day_of(at_ms)).or_default();
        if credit {
            volume.credited += i128::from(amount);
        } else {
            volume.debited += i128::from(amount);
        }
        volume.entries += 1;
    }

    /// The days of `days` that saw entries, oldest first.
    pub fn within(&self, days: Days) -> impl Iterator<Item = (i64, &Volume)> + '_ {
        self.days
            .range(days.first..=days.last)
            .map(|(&day, volume)| (day, volume))
    }

    /// The totals over `days`.
    #[must_use]
    pub fn total(&self, days: Days) -> Volume {
        self.within(days)
            .fold(Volume::default(), |sum, (_, v)| Volume {
                credited: sum.credited + v.credited,
                debited: sum.debited + v.debited,
                entries: sum.entries + v.entries,
            })
    }

    /// The last day with an entry.
    #[must_use]
    pub fn last_day(&self) -> Option<i64> {
        self.days.keys().next_back().copied()
    }

    /// Every day with entries, oldest first: what a wallet checkpoint keeps.
    pub fn days(&self) -> impl Iterator<Item = (i64, &Volume)> + '_ {
        self.days.iter().map(|(&day, volume)| (day, volume))
    }

    /// The totals read back from a checkpoint (a later day replaces an earlier same day).
    #[must_use]
    pub fn from_days(days: impl IntoIterator<Item = (i64, Volume)>) -> Self {
        Self {
            days: days.into_iter().collect(),
        }
    }
}

/// Each count's share of the total in hundredths of a percent, summing to exactly 10 000 (all
/// zero when the total is zero): 50 and 100 give 3 333 and 6 667.
#[must_use]
pub fn percentages(counts: &[u64]) -> Vec<u32> {
    if counts.iter().all(|&c| c == 0) {
        return vec![0; counts.len()];
    }
    let weights: Vec<i128> = counts.iter().map(|&c| i128::from(c)).collect();
    allocate(10_000, &weights)
        .into_iter()
        .map(|p| u32::try_from(p).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(0, |t| day_of(t.and_utc().timestamp_millis()))
    }

    fn days(first: i64, last: i64) -> Days {
        Days::new(first, last).unwrap_or(Days::ALL)
    }

    #[test]
    fn the_reference_segmentation_example() {
        assert_eq!(percentages(&[50, 100]), vec![3_333, 6_667]);
        assert_eq!(percentages(&[1, 1, 1]).iter().sum::<u32>(), 10_000);
        assert_eq!(percentages(&[0, 0]), vec![0, 0]);
    }

    #[test]
    fn every_bucket_is_present_and_keyed() {
        let events = [
            (day(2026, 1, 5), 1),
            (day(2026, 1, 31), 1),
            (day(2026, 3, 1), 1),
            (day(2026, 6, 30), 1),
            (day(2026, 7, 1), 1),
        ];
        let monthly = trend(
            events,
            days(day(2026, 1, 1), day(2026, 6, 30)),
            Interval::Monthly,
        )
        .unwrap_or_default();
        assert_eq!(
            monthly,
            vec![
                ("2026-01".to_owned(), 2),
                ("2026-02".to_owned(), 0),
                ("2026-03".to_owned(), 1),
                ("2026-04".to_owned(), 0),
                ("2026-05".to_owned(), 0),
                ("2026-06".to_owned(), 1),
            ]
        );
        let daily = trend(
            events,
            days(day(2026, 1, 30), day(2026, 2, 1)),
            Interval::Daily,
        )
        .unwrap_or_default();
        assert_eq!(
            daily,
            vec![
                ("2026-01-30".to_owned(), 0),
                ("2026-01-31".to_owned(), 1),
                ("2026-02-01".to_owned(), 0),
            ]
        );
        let yearly = trend(
            events,
            days(day(2025, 6, 1), day(2026, 12, 31)),
            Interval::Yearly,
        )
        .unwrap_or_default();
        assert_eq!(yearly, vec![("2025".to_owned(), 0), ("2026".to_owned(), 5)]);
        assert!(Days::new(day(2026, 1, 2), day(2026, 1, 1)).is_err());
        assert!(trend(
            events,
            days(day(1000, 1, 1), day(2026, 1, 1)),
            Interval::Daily
        )
        .is_err());
        assert_eq!(
            trend(
                events,
                days(day(1000, 1, 1), day(2026, 1, 1)),
                Interval::Yearly
            )
            .map(|t| t.len())
            .ok(),
            Some(1027)
        );
    }

    #[test]
    fn day_volumes_total_what_a_wallet_moved() {
        let mut volumes = DayVolumes::default();
        let noon = |d: i64| d * DAY_MS + DAY_MS / 2;
        volumes.add(noon(day(2026, 3, 1)), true, 500);
        volumes.add(noon(day(2026, 3, 1)), false, 120);
        volumes.add(noon(day(2026, 3, 4)), false, 30);
        volumes.add(day(2026, 3, 5) * DAY_MS - 1, true, 7); // the last instant of 4 March
        let march = volumes.total(days(day(2026, 3, 1), day(2026, 3, 31)));
        assert_eq!(
            (march.credited, march.debited, march.entries),
            (507, 150, 4)
        );
        let fourth = volumes.total(days(day(2026, 3, 4), day(2026, 3, 4)));
        assert_eq!(
            (fourth.credited, fourth.debited, fourth.entries),
            (7, 30, 2)
        );
        assert_eq!(volumes.last_day(), Some(day(2026, 3, 4)));
        assert_eq!(day_of(-1), -1);
    }
}
