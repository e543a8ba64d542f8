//! Reseller applications: a prospective reseller applies, an admin approves (with a commission
//! rate) or rejects (with a reason). Pending is the only status that can change; every other
//! change is `STATUS_TRANSITION_DENIED`. Times and actors are recorded.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::error::{Error, Result};
use super::money::Rate;
use super::record::Fields;
use super::reseller::{company_name, email, iso_time};

/// The longest free text (name, address, notes, reason), in bytes.
pub const TEXT_LEN_MAX: usize = 1_000;
/// The most customers an applicant may say it expects.
pub const EXPECTED_CUSTOMERS_MAX: u64 = 10_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ApplicationStatus {
    Pending,
    Approved,
    Rejected,
}

impl ApplicationStatus {
    pub const ALL: [Self; 3] = [Self::Pending, Self::Approved, Self::Rejected];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BusinessType {
    Individual,
    Company,
}

impl BusinessType {
    pub const ALL: [Self; 2] = [Self::Individual, Self::Company];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Individual => "individual",
            Self::Company => "company",
        }
    }
}

/// An application as stored and as handed to a host.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub id: String,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub business_name: String,
    pub business_address: String,
    pub business_type: BusinessType,
    pub expected_customers: u64,
    pub status: ApplicationStatus,
    #[serde(serialize_with = "iso_time::serialize")]
    pub submitted_at: DateTime<Utc>,
    #[serde(serialize_with = "opt_time")]
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    #[serde(serialize_with = "opt_rate")]
    pub commission_rate: Option<Rate>,
    pub notes: Option<String>,
    pub rejection_reason: Option<String>,
    /// The reseller an approval created or activated.
    pub reseller_id: Option<String>,
}

fn opt_time<S: serde::Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match at {
        Some(at) => iso_time::serialize(at, s),
        None => s.serialize_none(),
    }
}

fn opt_rate<S: serde::Serializer>(
    rate: &Option<Rate>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match rate {
        Some(rate) => s.serialize_str(&rate.to_decimal().to_string()),
        None => s.serialize_none(),
    }
}

/// Printable, non-blank text of at most `max` bytes.
fn text(value: String, field: &str, max: usize) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be blank"));
    }
    if trimmed.len() > max {
        return Err(Error::invalid(field, format!("at most {max} bytes")));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(field, "must not hold control characters"));
    }
    Ok(trimmed.to_owned())
}

/// A phone number: digits with optional `+`, spaces, dots, dashes and parentheses; 5 to 20
/// digits.
fn phone(value: String, field: &str) -> Result<String> {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let shape = value
        .chars()
        .all(|c| c.is_ascii_digit() || " +-.()".contains(c));
    if !shape || !(5..=20).contains(&digits) {
        return Err(Error::invalid(
            field,
            "expected a phone number: 5 to 20 digits, with + ( ) - . or spaces",
        ));
    }
    Ok(value.trim().to_owned())
}

impl Application {
    /// A new pending application from the applicant's form (a JSON object), checked field by
    /// field. `termsAccepted` must be `true`.
    pub fn submit(form: Value, id: String, at: DateTime<Utc>) -> Result<Self> {
        let mut f = Fields::new(form, "application")?;
        let name = text(f.string("name")?, &f.path("name"), 200)?;
        let email = email(&f.string("email")?, &f.path("email"))?;
        let phone = phone(f.string("phone")?, &f.path("phone"))?;
        let business_name = company_name(&f.string("businessName")?, &f.path("businessName"))?;
        let business_address = text(
            f.string("businessAddress")?,
            &f.path("businessAddress"),
            TEXT_LEN_MAX,
        )?;
        let business_type = f
            .opt_choice("businessType", &BusinessType::ALL, BusinessType::as_str)?
            .ok_or_else(|| Error::invalid(f.path("businessType"), "is required"))?;
        let expected = f.take("expectedCustomers");
        let expected_customers = expected
            .as_ref()
            .and_then(Value::as_u64)
            .filter(|&n| n <= EXPECTED_CUSTOMERS_MAX)
            .ok_or_else(|| {
                Error::invalid(
                    f.path("expectedCustomers"),
                    format!("expected a whole number from 0 to {EXPECTED_CUSTOMERS_MAX}"),
                )
            })?;
        if f.opt_bool("termsAccepted")? != Some(true) {
            return Err(Error::invalid(
                f.path("termsAccepted"),
                "the terms must be accepted (true)",
            ));
        }
        f.finish(&[
            "name",
            "email",
            "phone",
            "businessName",
            "businessAddress",
            "businessType",
            "expectedCustomers",
            "termsAccepted",
        ])?;
        Ok(Self {
            id,
            name,
            email,
            phone,
            business_name,
            business_address,
            business_type,
            expected_customers,
            status: ApplicationStatus::Pending,
            submitted_at: at,
            decided_at: None,
            decided_by: None,
            commission_rate: None,
            notes: None,
            rejection_reason: None,
            reseller_id: None,
        })
    }

    fn require_pending(&self, action: &'static str) -> Result<()> {
        if self.status == ApplicationStatus::Pending {
            Ok(())
        } else {
            Err(Error::StatusTransitionDenied {
                entity: "application",
                key: self.id.clone(),
                from: self.status.as_str().into(),
                action: action.into(),
            })
        }
    }

    /// Checks that the application may be approved.
    pub fn check_approvable(&self) -> Result<()> {
        self.require_pending("approved")
    }

    /// The approved application, naming the reseller the approval created or activated.
    pub fn approve(
        &self,
        commission_rate: Rate,
        notes: Option<String>,
        approved_by: String,
        reseller_id: String,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        self.require_pending("approved")?;
        let notes = notes.map(|n| text(n, "notes", TEXT_LEN_MAX)).transpose()?;
        let approved_by = text(approved_by, "approvedBy", 200)?;
        Ok(Self {
            status: ApplicationStatus::Approved,
            decided_at: Some(at),
            decided_by: Some(approved_by),
            commission_rate: Some(commission_rate),
            notes,
            reseller_id: Some(reseller_id),
            ..self.clone()
        })
    }

    /// The rejected application; the reason is required.
    pub fn reject(&self, reason: String, rejected_by: String, at: DateTime<Utc>) -> Result<Self> {
        self.require_pending("rejected")?;
        let reason = text(reason, "reason", TEXT_LEN_MAX)?;
        let rejected_by = text(rejected_by, "rejectedBy", 200)?;
        Ok(Self {
            status: ApplicationStatus::Rejected,
            decided_at: Some(at),
            decided_by: Some(rejected_by),
            rejection_reason: Some(reason),
            ..self.clone()
        })
    }

    /// Reads an application back from its stored JSON.
    pub fn from_json(value: Value, path: &str) -> Result<Self> {
        let mut f = Fields::new(value, path)?;
        let time = |f: &mut Fields, key: &str| -> Result<Option<DateTime<Utc>>> {
            f.opt_string(key)?
                .map(|t| {
                    DateTime::parse_from_rfc3339(&t)
                        .map(|at| at.with_timezone(&Utc))
                        .map_err(|e| Error::invalid(f.path(key), e.to_string()))
                })
                .transpose()
        };
        let status = f
            .opt_choice("status", &ApplicationStatus::ALL, ApplicationStatus::as_str)?
            .ok_or_else(|| Error::invalid(f.path("status"), "is required"))?;
        let business_type = f
            .opt_choice("businessType", &BusinessType::ALL, BusinessType::as_str)?
            .ok_or_else(|| Error::invalid(f.path("businessType"), "is required"))?;
        let out = Self {
            id: f.string("id")?,
            name: f.string("name")?,
            email: f.string("email")?,
            phone: f.string("phone")?,
            business_name: f.string("businessName")?,
            business_address: f.string("businessAddress")?,
            business_type,
            expected_customers: f
                .take("expectedCustomers")
                .and_then(|v| v.as_u64())
                .unwrap_or(0),
            status,
            submitted_at: time(&mut f, "submittedAt")?
                .ok_or_else(|| Error::invalid("submittedAt", "is required"))?,
            decided_at: time(&mut f, "decidedAt")?,
            decided_by: f.opt_string("decidedBy")?,
            commission_rate: f
                .opt_string("commissionRate")?
                .map(|t| Rate::parse(&t, "commissionRate"))
                .transpose()?,
            notes: f.opt_string("notes")?,
            rejection_reason: f.opt_string("rejectionReason")?,
            reseller_id: f.opt_string("resellerId")?,
        };
        f.finish(&[])?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form() -> Value {
        json!({
            "name": "Ada Lovelace", "email": "ada@abc.example", "phone": "+44 20 7946 0958",
            "businessName": "ABC Resellers", "businessAddress": "1 Main St, London",
            "businessType": "company", "expectedCustomers": 40, "termsAccepted": true,
        })
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
    }

    #[test]
    fn pending_is_the_only_status_that_changes() {
        let app = Application::submit(form(), "ap_1".into(), at()).expect("a valid form");
        assert_eq!(app.status, ApplicationStatus::Pending);
        let rate = Rate::from_units(1500).unwrap_or(Rate::ZERO);
        let approved = app
            .approve(
                rate,
                Some("good fit".into()),
                "admin-7".into(),
                "rs_1".into(),
                at(),
            )
            .expect("approvable");
        assert_eq!(
            (
                approved.status,
                approved.commission_rate,
                approved.decided_by.as_deref()
            ),
            (ApplicationStatus::Approved, Some(rate), Some("admin-7"))
        );
        let rejected = app
            .reject("incomplete".into(), "admin-7".into(), at())
            .expect("rejectable");
        // The transition table: from approved or rejected nothing changes.
        for done in [&approved, &rejected] {
            let again = done.approve(rate, None, "a".into(), "rs".into(), at());
            let undo = done.reject("r".into(), "a".into(), at());
            for outcome in [again.err(), undo.err()] {
                assert_eq!(
                    outcome.map(|e| e.code().as_str()),
                    Some("STATUS_TRANSITION_DENIED")
                );
            }
        }
        assert!(
            app.reject("  ".into(), "a".into(), at()).is_err(),
            "a reason is required"
        );
        let stored = serde_json::to_value(&approved).unwrap_or_default();
        assert_eq!(Application::from_json(stored, "a").ok(), Some(approved));
    }

    #[test]
    fn the_form_is_checked_field_by_field() {
        let cases = [
            ("name", json!("")),
            ("email", json!("not-an-email")),
            ("phone", json!("call me")),
            ("businessName", json!(5)),
            ("businessType", json!("empire")),
            ("expectedCustomers", json!(-1)),
            ("expectedCustomers", json!(1.5)),
            ("termsAccepted", json!(false)),
            ("extra", json!(1)),
        ];
        for (key, value) in cases {
            let mut bad = form();
            bad[key] = value;
            let e = Application::submit(bad, "ap".into(), at()).expect_err(key);
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
    }
}
