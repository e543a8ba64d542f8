//! Partner health through the storage port: each recorded score joins the partner's history, a
//! crossing into a worse band raises an alert (once per crossing: the bands' hysteresis keeps a
//! score hovering at a threshold from alerting again), the account manager is mailed through the
//! outbox, and interventions are opened and closed against the alert.
//!
//! Layout: `health` holds one state record per reseller (the last score, its band and the
//! history's length); `health_scores` the history (`hs_<reseller>_<sequence>`); `health_alerts`
//! the alerts (`ha_<reseller>_<sequence>`, the sequence of the score that raised it). The state
//! record is written first, by compare-and-set, and carries the score and alert it adds; a call
//! cut short after it is completed by the next call for the same reseller.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::ports::{Clock, Mailer, Storage, StoredRecord};
use super::resellers::Versioned;
use super::{storage_failed, Ally, RETRY_COUNT_MAX};
use crate::domain::health::{self, AlertStatus, Band, HealthOptions, Metrics};
use crate::domain::money::Currency;
use crate::domain::notice::{self, HEALTH_ALERT};
use crate::domain::reseller::{iso_time, Reseller};
use crate::domain::{Error, Result};

const STATE: &str = "health";
const HISTORY: &str = "health_scores";
const ALERTS: &str = "health_alerts";
const INDEX_RESELLER: &str = "resellerId";
const INDEX_STATUS: &str = "status";
/// The reseller metadata key holding its account manager's email.
pub const ACCOUNT_MANAGER_KEY: &str = "accountManager";
/// The most text a note, outcome or actor may hold.
pub const NOTE_LEN_MAX: usize = 2_000;

/// What recording a score did.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The history record: the score as `healthScore` gives it, with id, sequence and period.
    pub score: Value,
    /// The alert it raised, if it crossed into a worse band.
    pub alert: Option<Value>,
    /// The `healthAlert` event to raise.
    pub event: Option<HealthAlertEvent>,
}

/// A `healthAlert` event: the reseller, the alert, and how the mail went (`sent`, `pending`,
/// `undeliverable`).
#[derive(Clone, Debug, PartialEq)]
pub struct HealthAlertEvent {
    pub reseller: Reseller,
    pub alert: Value,
    pub notification: &'static str,
}

fn unreadable(collection: &str, id: &str, reason: impl std::fmt::Display) -> Error {
    Error::StorageFailed {
        operation: "get",
        reason: format!("{collection} record \"{id}\" is not readable: {reason}"),
    }
}

fn read_json(record: StoredRecord) -> Result<Versioned<Value>> {
    let value: Value =
        serde_json::from_str(&record.data).map_err(|e| unreadable("health", &record.id, e))?;
    if !value.is_object() {
        return Err(unreadable("health", &record.id, "not an object"));
    }
    Ok(Versioned {
        value,
        version: record.version,
    })
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn alert_record(alert: &Value, version: u64) -> StoredRecord {
    StoredRecord {
        id: text(alert, "id").to_owned(),
        version,
        data: alert.to_string(),
        indexes: vec![
            (
                INDEX_RESELLER.to_owned(),
                text(alert, "resellerId").to_owned(),
            ),
            (INDEX_STATUS.to_owned(), text(alert, "status").to_owned()),
        ],
    }
}

fn score_record(score: &Value, version: u64) -> StoredRecord {
    StoredRecord {
        id: text(score, "id").to_owned(),
        version,
        data: score.to_string(),
        indexes: vec![(
            INDEX_RESELLER.to_owned(),
            text(score, "resellerId").to_owned(),
        )],
    }
}

fn band_of(value: &Value, key: &str) -> Option<Band> {
    let name = value.get(key)?.as_str()?;
    Band::ALL.into_iter().find(|b| b.as_str() == name)
}

/// `"67.25"` as 6725 hundredths.
fn hundredths(value: &Value, key: &str) -> Option<u32> {
    let (whole, fraction) = value.get(key)?.as_str()?.split_once('.')?;
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = fraction.parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

/// A note, outcome or actor: printable text of 1 to [`NOTE_LEN_MAX`] bytes.
pub fn check_note(value: &str, field: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty()
        || trimmed.len() > NOTE_LEN_MAX
        || trimmed.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(Error::invalid(
            field,
            format!("expected printable text of 1 to {NOTE_LEN_MAX} bytes"),
        ));
    }
    Ok(trimmed.to_owned())
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// Scores a reseller's metrics for a period against its last recorded score (for the trend
    /// and the bands' hysteresis), adds the score to its history, and raises an alert when it
    /// crossed into a worse band.
    pub async fn record_health(
        &self,
        reseller_id: &str,
        metrics: &Metrics,
        options: &HealthOptions,
        currency: &Currency,
        period: Option<String>,
    ) -> Result<Recorded> {
        let reseller = self.require_reseller(reseller_id).await?.value;
        let at = self.now()?;
        for _ in 0..RETRY_COUNT_MAX {
            let state = self
                .storage
                .get(STATE, &reseller.id)
                .await
                .map_err(storage_failed("get"))?
                .map(read_json)
                .transpose()?;
            let (version, sequence, previous) = match &state {
                None => (0, 0, None),
                Some(s) => {
                    self.complete(&s.value).await?;
                    let sequence = s.value.get("sequence").and_then(Value::as_u64).unwrap_or(0);
                    let last = s.value.get("last").unwrap_or(&Value::Null);
                    let previous = hundredths(last, "score").zip(band_of(last, "band"));
                    (s.version, sequence, previous)
                }
            };
            let scored = health::health_score(metrics, options, previous.map(|(_, band)| band))?;
            let sequence = sequence + 1;
            let mut score =
                health::score_json(&scored, options, currency, previous.map(|(score, _)| score));
            let id = format!("hs_{}_{sequence:06}", reseller.id);
            let fields = json!({
                "id": id,
                "resellerId": reseller.id,
                "sequence": sequence,
                "period": period,
                "recordedAt": iso_time::format(at),
            });
            merge(&mut score, fields);
            let alert = health::is_worse(previous.map(|(_, band)| band), scored.band).then(|| {
                json!({
                    "id": format!("ha_{}_{sequence:06}", reseller.id),
                    "resellerId": reseller.id,
                    "scoreId": id,
                    "period": period,
                    "fromBand": previous.map(|(_, band)| band.as_str()),
                    "band": scored.band.as_str(),
                    "score": score["score"],
                    "previousScore": previous.map(|(s, _)| health::points_text(i64::from(s))),
                    "status": AlertStatus::Open.as_str(),
                    "raisedAt": iso_time::format(at),
                    "intervention": null,
                })
            });
            let next = json!({
                "id": reseller.id,
                "resellerId": reseller.id,
                "sequence": sequence,
                "last": score,
                "alert": alert,
            });
            let record = StoredRecord {
                id: reseller.id.clone(),
                version: version + 1,
                data: next.to_string(),
                indexes: vec![(INDEX_RESELLER.to_owned(), reseller.id.clone())],
            };
            if !self.put_at(STATE, &record, version, &[]).await? {
                continue; // another writer recorded a score first: score again against it
            }
            self.complete(&next).await?;
            let event = match &alert {
                Some(alert) => Some(self.alert_mail(&reseller, alert, at).await),
                None => None,
            };
            return Ok(Recorded {
                score,
                alert,
                event,
            });
        }
        Err(Error::Conflict {
            entity: "health",
            key: reseller.id.clone(),
            attempts: RETRY_COUNT_MAX,
        })
    }

    /// Writes the score and alert a state record names, when an earlier call was cut short
    /// before it did (an existing record is left as it is).
    async fn complete(&self, state: &Value) -> Result<()> {
        if let Some(score) = state.get("last").filter(|v| v.is_object()) {
            self.put_new(HISTORY, &score_record(score, 1)).await?;
        }
        if let Some(alert) = state.get("alert").filter(|v| v.is_object()) {
            self.put_new(ALERTS, &alert_record(alert, 1)).await?;
        }
        Ok(())
    }

    async fn put_new(&self, collection: &str, record: &StoredRecord) -> Result<()> {
        let found = self
            .storage
            .get(collection, &record.id)
            .await
            .map_err(storage_failed("get"))?;
        if found.is_none() {
            // Stale: another writer completed it first, which is as good.
            self.storage
                .put(collection, record, 0, &[])
                .await
                .map_err(storage_failed("put"))?;
        }
        Ok(())
    }

    async fn alert_mail(
        &self,
        reseller: &Reseller,
        alert: &Value,
        at: DateTime<Utc>,
    ) -> HealthAlertEvent {
        let to = reseller
            .metadata
            .get(ACCOUNT_MANAGER_KEY)
            .and_then(Value::as_str);
        let id = text(alert, "id");
        let message = notice::health_alert_mail(
            reseller,
            to,
            id,
            alert
                .get("fromBand")
                .and_then(Value::as_str)
                .unwrap_or("no score"),
            text(alert, "band"),
            text(alert, "score"),
            &self.config.dashboard_url,
        );
        let notification = self
            .notify_mail(id, HEALTH_ALERT, &reseller.id, message, at)
            .await;
        HealthAlertEvent {
            reseller: reseller.clone(),
            alert: alert.clone(),
            notification,
        }
    }

    /// A reseller's recorded scores, oldest first.
    pub async fn health_history(&self, reseller_id: &str) -> Result<Vec<Value>> {
        self.require_reseller(reseller_id).await?;
        self.find_all(HISTORY, Some((INDEX_RESELLER, reseller_id)), |r| {
            read_json(r).map(|v| v.value)
        })
        .await
    }

    /// Alerts, oldest first: of one reseller and/or in one status.
    pub async fn health_alerts(
        &self,
        reseller_id: Option<&str>,
        status: Option<AlertStatus>,
    ) -> Result<Vec<Value>> {
        let index = match (reseller_id, status) {
            (Some(id), _) => Some((INDEX_RESELLER, id)),
            (None, Some(s)) => Some((INDEX_STATUS, s.as_str())),
            (None, None) => None,
        };
        let all = self
            .find_all(ALERTS, index, |r| read_json(r).map(|v| v.value))
            .await?;
        Ok(all
            .into_iter()
            .filter(|a| status.is_none_or(|s| text(a, "status") == s.as_str()))
            .collect())
    }

    /// One alert, or `NOT_FOUND`.
    pub async fn health_alert(&self, id: &str) -> Result<Value> {
        self.storage
            .get(ALERTS, id)
            .await
            .map_err(storage_failed("get"))?
            .map(read_json)
            .transpose()?
            .map(|v| v.value)
            .ok_or_else(|| Error::NotFound {
                entity: "health alert",
                key: id.to_owned(),
            })
    }

    /// Opens an intervention on an open alert (it becomes `acknowledged`).
    pub async fn open_intervention(&self, alert_id: &str, note: &str, by: &str) -> Result<Value> {
        let at = iso_time::format(self.now()?);
        self.change_alert(alert_id, |alert| {
            let status = alert_status(alert)?.open_intervention(alert_id)?;
            let mut next = alert.clone();
            next["status"] = status.as_str().into();
            next["intervention"] = json!({
                "note": note,
                "openedBy": by,
                "openedAt": at,
                "outcome": null,
                "closedBy": null,
                "closedAt": null,
            });
            Ok(Some(next))
        })
        .await
    }

    /// Closes the alert's intervention with its outcome (the alert becomes `resolved`).
    pub async fn close_intervention(
        &self,
        alert_id: &str,
        outcome: &str,
        by: &str,
    ) -> Result<Value> {
        let at = iso_time::format(self.now()?);
        self.change_alert(alert_id, |alert| {
            let status = alert_status(alert)?.close_intervention(alert_id)?;
            let mut next = alert.clone();
            next["status"] = status.as_str().into();
            next["intervention"]["outcome"] = outcome.into();
            next["intervention"]["closedBy"] = by.into();
            next["intervention"]["closedAt"] = at.clone().into();
            Ok(Some(next))
        })
        .await
    }

    async fn change_alert(
        &self,
        id: &str,
        change: impl FnMut(&Value) -> Result<Option<Value>>,
    ) -> Result<Value> {
        let done = self
            .update_record(ALERTS, id, "health alert", read_json, alert_record, change)
            .await?;
        Ok(done.value)
    }
}

fn alert_status(alert: &Value) -> Result<AlertStatus> {
    let name = text(alert, "status");
    AlertStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == name)
        .ok_or_else(|| unreadable("health_alerts", text(alert, "id"), "unknown status"))
}

/// Adds `fields` to `target` (both objects).
fn merge(target: &mut Value, fields: Value) {
    if let (Some(map), Value::Object(extra)) = (target.as_object_mut(), fields) {
        for (k, v) in extra {
            map.insert(k, v);
        }
    }
}
