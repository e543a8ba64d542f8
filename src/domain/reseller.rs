//! Resellers: the partner profile that owns a tier, a wallet and clients.
//!
//! Pure decisions only: what a new reseller looks like, what a metadata update produces. The
//! engine stores the results.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::decimal::printable;
use super::error::{Error, Result};
use super::money::{Credits, Rate};
use super::record::Fields;
use super::rounding::Rounding;
use super::tier::{tier_cost, TierName, TierTable};

/// The system user a reseller profile belongs to: a positive integer or an opaque string id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum UserId {
    Number(u64),
    Text(String),
}

impl UserId {
    pub const TEXT_LEN_MAX: usize = 128;

    pub fn number(value: u64, field: &str) -> Result<Self> {
        if value == 0 || Credits::new(value).is_none() {
            return Err(Error::invalid(
                field,
                format!("a numeric user id is a safe integer of at least 1, got {value}"),
            ));
        }
        Ok(Self::Number(value))
    }

    pub fn text(value: &str, field: &str) -> Result<Self> {
        let ok = !value.trim().is_empty()
            && value.len() <= Self::TEXT_LEN_MAX
            && value.trim() == value
            && !value.chars().any(char::is_control);
        if !ok {
            return Err(Error::invalid(
                field,
                format!(
                    "a user id string is 1-{} bytes, not blank, without surrounding blanks or \
                     control characters; got \"{}\"",
                    Self::TEXT_LEN_MAX,
                    printable(value)
                ),
            ));
        }
        Ok(Self::Text(value.to_owned()))
    }

    /// The key the user is indexed under; `1` and `"1"` are the same user.
    #[must_use]
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => n.fmt(f),
            Self::Text(s) => f.write_str(s),
        }
    }
}

/// Where a reseller stands. The reference's `active` scope lists the active ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ResellerStatus {
    Active,
    Suspended,
    Inactive,
}

impl ResellerStatus {
    pub const ALL: [Self; 3] = [Self::Active, Self::Suspended, Self::Inactive];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Inactive => "inactive",
        }
    }

    pub fn parse(text: &str, field: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!(
                        "status must be \"active\", \"suspended\" or \"inactive\", got \"{}\"",
                        printable(text)
                    ),
                )
            })
    }
}

/// An admin's change of a reseller's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusChange {
    Suspend { reason: Option<String> },
    Reactivate,
    Deactivate { reason: Option<String> },
}

/// The longest reason a status change may carry, in bytes.
pub const STATUS_REASON_LEN_MAX: usize = 512;

/// Free-form JSON data on a reseller (branding, flags such as `hold_provisioning`).
pub type Metadata = Map<String, Value>;

/// Bounds on metadata, so a host cannot grow a record without limit.
pub const METADATA_BYTES_MAX: usize = 16 * 1024;
pub const METADATA_KEY_LEN_MAX: usize = 128;

/// A reseller profile as stored and as handed to a host.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reseller {
    pub id: String,
    /// Public, non-sequential reference, e.g. `RS-7K3M9Q2XAB`.
    pub refid: String,
    pub user_id: UserId,
    pub company_name: String,
    pub email: Option<String>,
    pub tier: String,
    pub status: ResellerStatus,
    /// Why it was suspended or deactivated, as the admin gave it (`None` while active).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub metadata: Metadata,
    /// Its own commission rate on its customers' payments (`None`: not set).
    #[serde(serialize_with = "rate_text")]
    pub commission_rate: Option<Rate>,
    /// The reseller above it in the hierarchy.
    pub parent_id: Option<String>,
    #[serde(serialize_with = "iso_time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "iso_time::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// The fields a host gives to create a reseller, before validation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResellerDraft {
    pub user_id: Option<UserId>,
    pub company_name: Option<String>,
    pub email: Option<String>,
    pub tier: Option<String>,
    pub metadata: Option<Metadata>,
    pub commission_rate: Option<Rate>,
}

/// A rate as its 4-decimal text (`"0.1500"`), or null.
fn rate_text<S: serde::Serializer>(
    rate: &Option<Rate>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match rate {
        Some(rate) => serializer.serialize_str(&rate.to_decimal().to_string()),
        None => serializer.serialize_none(),
    }
}

pub const COMPANY_LEN_MAX: usize = 200;
pub const EMAIL_LEN_MAX: usize = 254;

/// Checks a company name.
pub fn company_name(text: &str, field: &str) -> Result<String> {
    let ok = !text.trim().is_empty()
        && text.chars().count() <= COMPANY_LEN_MAX
        && !text.chars().any(char::is_control);
    if !ok {
        return Err(Error::invalid(
            field,
            format!(
                "a company name is 1-{COMPANY_LEN_MAX} characters, not blank, without control \
                 characters; got \"{}\"",
                printable(text)
            ),
        ));
    }
    Ok(text.trim().to_owned())
}

/// Checks an email address's shape (one `@`, a dotted domain, no blanks), keeping its case.
pub fn email(text: &str, field: &str) -> Result<String> {
    let shape_ok = text.len() <= EMAIL_LEN_MAX
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && text.split('@').count() == 2
        && text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    if !shape_ok {
        return Err(Error::invalid(
            field,
            format!("\"{}\" is not an email address", printable(text)),
        ));
    }
    Ok(text.to_owned())
}

/// Checks a metadata map: key lengths and total size (reserved keys are refused at the edge).
pub fn metadata(map: Metadata, field: &str) -> Result<Metadata> {
    for key in map.keys() {
        if key.is_empty() || key.len() > METADATA_KEY_LEN_MAX {
            return Err(Error::invalid(
                field,
                format!(
                    "metadata keys are 1-{METADATA_KEY_LEN_MAX} bytes, got \"{}\"",
                    printable(key)
                ),
            ));
        }
    }
    let size = serde_json::to_vec(&map).map_or(usize::MAX, |bytes| bytes.len());
    if size > METADATA_BYTES_MAX {
        return Err(Error::invalid(
            field,
            format!("metadata is {size} bytes as JSON; at most {METADATA_BYTES_MAX} are allowed"),
        ));
    }
    Ok(map)
}

/// Checks that `child` may sit under a parent whose ancestors are `ancestors` (the parent
/// first, the top last) when the deepest reseller under `child` is `below` levels down: no
/// reseller may become its own ancestor, and no chain of resellers may be longer than
/// `levels_max` (the top included).
pub fn check_parent(
    child: &str,
    ancestors: &[String],
    below: usize,
    levels_max: usize,
) -> Result<()> {
    if ancestors.iter().any(|a| a == child) {
        return Err(Error::invalid(
            "parent",
            format!("\"{child}\" cannot sit under itself or one of its descendants"),
        ));
    }
    let levels = ancestors.len() + 1 + below;
    if levels > levels_max {
        return Err(Error::invalid(
            "parent",
            format!("the chain of resellers would be {levels} levels long; at most {levels_max} are allowed (hierarchyLevelsMax)"),
        ));
    }
    Ok(())
}

/// Decides the reseller a draft describes, with the identifiers and time the engine supplies.
pub fn create(
    draft: ResellerDraft,
    id: String,
    refid: String,
    tiers: &TierTable,
    default_tier: &TierName,
    at: DateTime<Utc>,
) -> Result<Reseller> {
    let user_id = draft.user_id.ok_or_else(|| {
        Error::invalid(
            "reseller.user",
            "a reseller needs a user id: call .user(id)",
        )
    })?;
    let company_name = draft.company_name.ok_or_else(|| {
        Error::invalid(
            "reseller.company",
            "a reseller needs a company name: call .company(name)",
        )
    })?;
    let tier = match draft.tier {
        Some(tier) => tiers.get(&tier)?.0.to_string(),
        None => default_tier.to_string(),
    };
    Ok(Reseller {
        id,
        refid,
        user_id,
        company_name,
        email: draft.email,
        tier,
        status: ResellerStatus::Active,
        status_reason: None,
        metadata: draft.metadata.unwrap_or_default(),
        commission_rate: draft.commission_rate,
        parent_id: None,
        created_at: at,
        updated_at: at,
    })
}

impl Reseller {
    /// Reads a reseller back from its stored JSON form (what `Serialize` wrote).
    pub fn from_json(value: Value, path: &str) -> Result<Self> {
        let mut r = Fields::new(value, path)?;
        let user_id = match r.take("userId") {
            Some(Value::String(s)) => UserId::Text(s),
            Some(Value::Number(n)) => UserId::Number(n.as_u64().ok_or_else(|| {
                Error::invalid(r.path("userId"), "expected a positive whole number")
            })?),
            _ => {
                return Err(Error::invalid(
                    r.path("userId"),
                    "expected a number or a string",
                ))
            }
        };
        let status_text = r.string("status")?;
        let metadata = match r.take("metadata") {
            None => Metadata::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(Error::invalid(r.path("metadata"), "expected an object")),
        };
        let reseller = Self {
            id: r.string("id")?,
            refid: r.string("refid")?,
            user_id,
            company_name: r.string("companyName")?,
            email: r.opt_string("email")?,
            tier: r.string("tier")?,
            status: ResellerStatus::parse(&status_text, &r.path("status"))?,
            status_reason: r.opt_string("statusReason")?,
            metadata,
            commission_rate: match r.opt_string("commissionRate")? {
                None => None,
                Some(text) => Some(Rate::parse(&text, &r.path("commissionRate"))?),
            },
            parent_id: r.opt_string("parentId")?,
            created_at: read_time(&mut r, "createdAt")?,
            updated_at: read_time(&mut r, "updatedAt")?,
        };
        r.finish(&[
            "id",
            "refid",
            "userId",
            "companyName",
            "email",
            "tier",
            "status",
            "statusReason",
            "metadata",
            "commissionRate",
            "parentId",
            "createdAt",
            "updatedAt",
        ])?;
        Ok(reseller)
    }

    /// The reseller with `key` set to `value` (or removed, for `None`).
    pub fn with_metadata(
        &self,
        key: &str,
        value: Option<Value>,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        let mut next = self.clone();
        match value {
            Some(value) => {
                next.metadata.insert(key.to_owned(), value);
            }
            None => {
                next.metadata.remove(key);
            }
        }
        next.metadata = metadata(next.metadata, "value")?;
        next.updated_at = at;
        Ok(next)
    }

    /// The reseller active, with this commission rate (an approved application).
    #[must_use]
    pub fn activated(&self, rate: Rate, at: DateTime<Utc>) -> Self {
        let mut next = self.with_commission_rate(Some(rate), at);
        next.status = ResellerStatus::Active;
        next.status_reason = None;
        next
    }

    /// The reseller inactive (its application was rejected after all, or an admin closed it).
    #[must_use]
    pub fn deactivated(&self, at: DateTime<Utc>) -> Self {
        self.with_status(ResellerStatus::Inactive, None, at)
    }

    fn with_status(
        &self,
        status: ResellerStatus,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> Self {
        let mut next = self.clone();
        next.status = status;
        next.status_reason = reason;
        next.updated_at = at;
        next
    }

    /// The admin's status changes, the reference's "suspending the reseller's ability to
    /// provision". `None`: the reseller already stands there (a repeated call changes nothing).
    /// Suspending an inactive reseller is `STATUS_TRANSITION_DENIED`: it is closed, and only
    /// `reactivate` opens it again.
    pub fn status_change(&self, change: StatusChange, at: DateTime<Utc>) -> Result<Option<Self>> {
        let (target, reason) = match change {
            StatusChange::Suspend { reason } => (ResellerStatus::Suspended, reason),
            StatusChange::Reactivate => (ResellerStatus::Active, None),
            StatusChange::Deactivate { reason } => (ResellerStatus::Inactive, reason),
        };
        if self.status == target && self.status_reason == reason {
            return Ok(None);
        }
        if target == ResellerStatus::Suspended && self.status == ResellerStatus::Inactive {
            return Err(Error::StatusTransitionDenied {
                entity: "reseller",
                key: self.id.clone(),
                from: self.status.as_str().into(),
                action: "suspended".into(),
            });
        }
        Ok(Some(self.with_status(target, reason, at)))
    }

    /// `RESELLER_INACTIVE` unless the reseller is active: what a debit checks first.
    pub fn check_may_spend(&self) -> Result<()> {
        if self.status == ResellerStatus::Active {
            return Ok(());
        }
        Err(Error::ResellerInactive {
            reseller: self.id.clone(),
            status: self.status.as_str(),
            reason: self.status_reason.clone(),
        })
    }

    /// The reseller with its commission rate set (or cleared).
    #[must_use]
    pub fn with_commission_rate(&self, rate: Option<Rate>, at: DateTime<Utc>) -> Self {
        let mut next = self.clone();
        next.commission_rate = rate;
        next.updated_at = at;
        next
    }

    /// The reseller under another parent (or at the top, for `None`). The engine checks the
    /// hierarchy first with [`check_parent`].
    #[must_use]
    pub fn with_parent(&self, parent_id: Option<String>, at: DateTime<Utc>) -> Self {
        let mut next = self.clone();
        next.parent_id = parent_id;
        next.updated_at = at;
        next
    }

    /// What this reseller pays for `base_price` under its tier (the reference's
    /// `calculateTierCost`).
    pub fn tier_cost(
        &self,
        base_price: Credits,
        tiers: &TierTable,
        rounding: Rounding,
    ) -> Result<Credits> {
        let (_, tier) = tiers.get(&self.tier)?;
        Ok(tier_cost(base_price, tier.discount, rounding))
    }
}

fn read_time(r: &mut Fields, key: &str) -> Result<DateTime<Utc>> {
    let text = r.string(key)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| Error::invalid(r.path(key), format!("not an ISO-8601 time: {e}")))
}

/// ISO-8601 in UTC with milliseconds, `2026-01-31T12:00:00.000Z`.
pub mod iso_time {
    use super::{DateTime, Utc};
    use chrono::{Datelike, SecondsFormat};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*at))
    }

    #[must_use]
    pub fn format(at: DateTime<Utc>) -> String {
        format_millis(at.timestamp_millis())
    }

    /// Milliseconds since the Unix epoch as ISO-8601 in UTC. Years 0 to 9999 are written
    /// directly (every ledger entry carries one, so this sits on the provision path); others,
    /// and times chrono cannot hold, go through chrono (which writes a sign and more digits) or
    /// give an empty string.
    #[must_use]
    pub fn format_millis(ms: i64) -> String {
        const MS_PER_DAY: i64 = 86_400_000;
        // 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z.
        const FIRST: i64 = -62_167_219_200_000;
        const LAST: i64 = 253_402_300_799_999;
        if !(FIRST..=LAST).contains(&ms) {
            return DateTime::from_timestamp_millis(ms).map_or_else(String::new, |at| {
                at.to_rfc3339_opts(SecondsFormat::Millis, true)
            });
        }
        let days = ms.div_euclid(MS_PER_DAY);
        let of_day = ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let mut out = [0u8; 24];
        put_digits(&mut out[0..4], year);
        out[4] = b'-';
        put_digits(&mut out[5..7], month);
        out[7] = b'-';
        put_digits(&mut out[8..10], day);
        out[10] = b'T';
        put_digits(&mut out[11..13], of_day / 3_600_000);
        out[13] = b':';
        put_digits(&mut out[14..16], of_day / 60_000 % 60);
        out[16] = b':';
        put_digits(&mut out[17..19], of_day / 1_000 % 60);
        out[19] = b'.';
        put_digits(&mut out[20..23], of_day % 1_000);
        out[23] = b'Z';
        // Digits and separators are ASCII.
        std::str::from_utf8(&out).unwrap_or_default().to_owned()
    }

    /// Reads back exactly what [`format_millis`] writes for years 0 to 9999
    /// (`YYYY-MM-DDTHH:MM:SS.sssZ`), or `None`: the strict, small reader for texts the engine
    /// made itself (chrono's general parser would add its format machinery to the module).
    #[must_use]
    pub fn parse_millis(text: &str) -> Option<i64> {
        let b = text.as_bytes();
        let separators = [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ];
        if b.len() != 24 || separators.iter().any(|&(i, c)| b[i] != c) {
            return None;
        }
        let number = |from: usize, to: usize| -> Option<i64> {
            b[from..to].iter().try_fold(0i64, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
            })
        };
        let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
        let (hour, minute, second, milli) = (
            number(11, 13)?,
            number(14, 16)?,
            number(17, 19)?,
            number(20, 23)?,
        );
        let date = chrono::NaiveDate::from_ymd_opt(
            i32::try_from(year).ok()?,
            u32::try_from(month).ok()?,
            u32::try_from(day).ok()?,
        )?;
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let days = i64::from(date.num_days_from_ce()) - 719_163;
        Some(days * 86_400_000 + ((hour * 60 + minute) * 60 + second) * 1_000 + milli)
    }

    fn put_digits(out: &mut [u8], mut value: i64) {
        for slot in out.iter_mut().rev() {
            // `value % 10` is a digit: the callers pass values in range.
            *slot = b'0' + u8::try_from(value % 10).unwrap_or(0);
            value /= 10;
        }
    }

    /// Year, month, day of a count of days since 1970-01-01 (the proleptic Gregorian calendar;
    /// H. Hinnant's `civil_from_days`).
    pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn iso_times_read_back_as_written(ms in -62_167_219_200_000i64..=253_402_300_799_999) {
            proptest::prop_assert_eq!(iso_time::parse_millis(&iso_time::format_millis(ms)), Some(ms));
        }

        #[test]
        fn iso_times_are_written_as_chrono_writes_them(ms in -62_167_219_200_000i64..=253_402_300_799_999) {
            let at = DateTime::from_timestamp_millis(ms).expect("in chrono's range");
            proptest::prop_assert_eq!(
                iso_time::format_millis(ms),
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
        }
    }

    #[test]
    fn iso_times_at_the_edges() {
        for ms in [
            0,
            -1,
            951_782_400_000,
            1_767_225_599_999,
            -62_167_219_200_000,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_167_219_200_001,
        ] {
            let at = DateTime::from_timestamp_millis(ms).expect("in chrono's range");
            assert_eq!(
                iso_time::format_millis(ms),
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "{ms}"
            );
        }
        assert_eq!(iso_time::format_millis(i64::MAX), "");
    }
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn draft() -> ResellerDraft {
        ResellerDraft {
            user_id: Some(UserId::Number(1)),
            company_name: Some("Elite Global".into()),
            email: Some("ops@elite.example".into()),
            tier: Some("platinum".into()),
            metadata: None,
            commission_rate: None,
        }
    }

    /// A platinum reseller made from `draft()` with the reference tiers.
    fn sample() -> Reseller {
        let standard = TierName::from_literal("standard");
        create(
            draft(),
            "rs_1".into(),
            "RS-1".into(),
            &TierTable::reference(),
            &standard,
            at(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn creates_with_defaults_and_checks() {
        let tiers = TierTable::reference();
        let standard = TierName::from_literal("standard");
        let r = sample();
        assert_eq!(
            (r.tier.as_str(), r.status),
            ("platinum", ResellerStatus::Active)
        );
        let base = Credits::new(1000).unwrap_or_default();
        assert_eq!(
            r.tier_cost(base, &tiers, Rounding::HalfUp)
                .map(Credits::get),
            Ok(700)
        );
        let r = create(
            ResellerDraft {
                tier: None,
                ..draft()
            },
            "rs_2".into(),
            "RS-2".into(),
            &tiers,
            &standard,
            at(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.tier, "standard");
        let err = create(
            ResellerDraft {
                tier: Some("diamond".into()),
                ..draft()
            },
            "x".into(),
            "y".into(),
            &tiers,
            &standard,
            at(),
        );
        assert_eq!(err.err().map(|e| e.code().as_str()), Some("UNKNOWN_TIER"));
        let err = create(
            ResellerDraft {
                user_id: None,
                ..draft()
            },
            "x".into(),
            "y".into(),
            &tiers,
            &standard,
            at(),
        );
        assert_eq!(err.err().map(|e| e.code().as_str()), Some("INVALID_INPUT"));
        let json = serde_json::to_string(&r).unwrap_or_default();
        assert!(
            json.contains("\"createdAt\":\"2026-01-31T12:00:00.000Z\""),
            "{json}"
        );
        let value: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        let back = Reseller::from_json(value, "r").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
    }

    #[test]
    fn checks_fields() {
        for good in ["a@b.co", "ops+x@elite.example"] {
            assert!(email(good, "e").is_ok(), "{good}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@.co", "a@b..co", "a@b.co.",
        ] {
            assert!(email(bad, "e").is_err(), "{bad}");
        }
        assert!(company_name("  ", "c").is_err());
        assert_eq!(company_name(" Elite ", "c"), Ok("Elite".into()));
        assert!(UserId::number(0, "u").is_err());
        assert!(UserId::text(" 1", "u").is_err());
        assert_eq!(UserId::Number(7).key(), UserId::Text("7".into()).key());
    }

    #[test]
    fn metadata_updates_are_bounded() {
        let r = sample();
        let held = r
            .with_metadata("hold_provisioning", Some(Value::Bool(true)), at())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            held.metadata.get("hold_provisioning"),
            Some(&Value::Bool(true))
        );
        let cleared = held
            .with_metadata("hold_provisioning", None, at())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(cleared.metadata.is_empty());
        let big = Value::String("x".repeat(METADATA_BYTES_MAX));
        assert!(r.with_metadata("logo", Some(big), at()).is_err());
    }
}
