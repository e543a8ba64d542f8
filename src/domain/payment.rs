//! Payments by clients as stored: what the commission reports read.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use std::collections::HashMap;

use super::commission::{Payment, PaymentKind, PaymentStatus};
use super::error::{Error, Result};
use super::record::Fields;
use super::reseller::iso_time;

/// A client's payment, refund or chargeback. The reseller is the client's at the time of the
/// payment (a reversal's: the reseller of the payment it reverses): moving a client later does
/// not move the commission already earned on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    pub id: String,
    pub client_id: String,
    pub reseller_id: Option<String>,
    /// Minor units of the configured currency, at least 1.
    pub amount: i64,
    pub at: DateTime<Utc>,
    pub status: PaymentStatus,
    pub kind: PaymentKind,
    /// For a refund or chargeback: the payment it reverses.
    pub reverses: Option<String>,
    pub description: Option<String>,
}

/// The stored JSON shape (amounts as minor units; the host-facing shape formats them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stored<'a> {
    id: &'a str,
    client_id: &'a str,
    reseller_id: Option<&'a str>,
    amount_minor: i64,
    at: String,
    status: &'static str,
    kind: &'static str,
    reverses: Option<&'a str>,
    description: Option<&'a str>,
}

impl PaymentRecord {
    /// The payment as the pure commission run takes it: under `customer`, its reversal pointing
    /// at the index `positions` gives the payment it reverses (none when that one is not in the
    /// run).
    #[must_use]
    pub fn to_payment(&self, customer: u32, positions: &HashMap<&str, u32>) -> Payment {
        Payment {
            customer,
            amount: self.amount,
            at_ms: self.at.timestamp_millis(),
            status: self.status,
            kind: self.kind,
            reverses: self
                .reverses
                .as_deref()
                .and_then(|r| positions.get(r).copied()),
        }
    }

    #[must_use]
    pub fn to_json(&self) -> String {
        let stored = Stored {
            id: &self.id,
            client_id: &self.client_id,
            reseller_id: self.reseller_id.as_deref(),
            amount_minor: self.amount,
            at: iso_time::format(self.at),
            status: self.status.as_str(),
            kind: self.kind.as_str(),
            reverses: self.reverses.as_deref(),
            description: self.description.as_deref(),
        };
        // Plain strings and integers always serialise.
        serde_json::to_string(&stored).unwrap_or_default()
    }

    pub fn from_json(value: Value, path: &str) -> Result<Self> {
        let mut f = Fields::new(value, path)?;
        let at_text = f.string("at")?;
        let at = DateTime::parse_from_rfc3339(&at_text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|e| Error::invalid(f.path("at"), e.to_string()))?;
        let amount = f
            .take("amountMinor")
            .and_then(|v| v.as_i64())
            .filter(|&a| a >= 1)
            .ok_or_else(|| {
                Error::invalid(f.path("amountMinor"), "expected a positive whole number")
            })?;
        let status = f
            .opt_choice("status", &PaymentStatus::ALL, PaymentStatus::as_str)?
            .ok_or_else(|| Error::invalid(f.path("status"), "is required"))?;
        let kind = f
            .opt_choice("kind", &PaymentKind::ALL, PaymentKind::as_str)?
            .ok_or_else(|| Error::invalid(f.path("kind"), "is required"))?;
        let record = Self {
            id: f.string("id")?,
            client_id: f.string("clientId")?,
            reseller_id: f.opt_string("resellerId")?,
            amount,
            at,
            status,
            kind,
            reverses: f.opt_string("reverses")?,
            description: f.opt_string("description")?,
        };
        f.finish(&[])?;
        Ok(record)
    }
}
