//! Clients: the customers (child accounts) a reseller serves, or standalone customers of the
//! business. A client has a public, non-sequential refid and a status that moves only along the
//! documented transitions; the commission run and the analytics read them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::error::{Error, Result};
use super::record::Fields;
use super::reseller::{email, iso_time, Metadata};

/// The longest client name, in bytes.
pub const NAME_LEN_MAX: usize = 200;

/// Where a client stands. New clients are pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClientStatus {
    Pending,
    Active,
    Suspended,
    Inactive,
}

impl ClientStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Active, Self::Suspended, Self::Inactive];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Inactive => "inactive",
        }
    }
}

/// A change of status a host asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// pending, suspended or inactive → active.
    Activate,
    /// active → suspended.
    Suspend,
    /// pending, active or suspended → inactive.
    Deactivate,
}

impl ClientAction {
    /// The transition table: the status an action leads to from `from`, if it is allowed.
    #[must_use]
    pub const fn from(self, from: ClientStatus) -> Option<ClientStatus> {
        use ClientStatus::{Active, Inactive, Pending, Suspended};
        match (self, from) {
            (Self::Activate, Pending | Suspended | Inactive) => Some(Active),
            (Self::Suspend, Active) => Some(Suspended),
            (Self::Deactivate, Pending | Active | Suspended) => Some(Inactive),
            _ => None,
        }
    }

    #[must_use]
    pub const fn past_tense(self) -> &'static str {
        match self {
            Self::Activate => "activated",
            Self::Suspend => "suspended",
            Self::Deactivate => "deactivated",
        }
    }
}

/// A client as stored and as handed to a host.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    pub id: String,
    /// Public, non-sequential reference, e.g. `CL-7K3M9Q2XAB`.
    pub refid: String,
    pub name: String,
    pub email: Option<String>,
    /// The reseller serving it; `None` for a standalone client of the business.
    pub reseller_id: Option<String>,
    pub status: ClientStatus,
    pub metadata: Metadata,
    #[serde(serialize_with = "iso_time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "iso_time::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// What a host gives to create a client, before the engine checks the reseller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientDraft {
    pub name: Option<String>,
    pub email: Option<String>,
    pub reseller_id: Option<String>,
    pub metadata: Option<Metadata>,
}

/// A client name: printable, not blank, at most [`NAME_LEN_MAX`] bytes.
pub fn name(text: &str, field: &str) -> Result<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.len() > NAME_LEN_MAX || trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("expected a printable name of 1 to {NAME_LEN_MAX} bytes"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A client email, checked as reseller emails are.
pub fn client_email(text: &str, field: &str) -> Result<String> {
    email(text, field)
}

impl Client {
    /// The client a draft describes, pending, with the identifiers and time the engine supplies.
    pub fn create(
        draft: ClientDraft,
        id: String,
        refid: String,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        let name = draft
            .name
            .ok_or_else(|| Error::invalid("client.name", "a client needs a name: call .name(n)"))?;
        Ok(Self {
            id,
            refid,
            name,
            email: draft.email,
            reseller_id: draft.reseller_id,
            status: ClientStatus::Pending,
            metadata: draft.metadata.unwrap_or_default(),
            created_at: at,
            updated_at: at,
        })
    }

    /// The client after `action`, or `STATUS_TRANSITION_DENIED`.
    pub fn transition(&self, action: ClientAction, at: DateTime<Utc>) -> Result<Self> {
        let to = action
            .from(self.status)
            .ok_or_else(|| Error::StatusTransitionDenied {
                entity: "client",
                key: self.id.clone(),
                from: self.status.as_str().into(),
                action: action.past_tense().into(),
            })?;
        Ok(Self {
            status: to,
            updated_at: at,
            ..self.clone()
        })
    }

    /// The key of the unique email index: emails compare without ASCII case.
    #[must_use]
    pub fn email_key(&self) -> Option<String> {
        self.email.as_deref().map(str::to_ascii_lowercase)
    }

    /// Reads a client back from its stored JSON.
    pub fn from_json(value: Value, path: &str) -> Result<Self> {
        let mut f = Fields::new(value, path)?;
        let time = |f: &mut Fields, key: &str| -> Result<DateTime<Utc>> {
            let text = f.string(key)?;
            DateTime::parse_from_rfc3339(&text)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|e| Error::invalid(f.path(key), e.to_string()))
        };
        let status = f
            .opt_choice("status", &ClientStatus::ALL, ClientStatus::as_str)?
            .ok_or_else(|| Error::invalid(f.path("status"), "is required"))?;
        let metadata = match f.take("metadata") {
            None => Metadata::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(Error::invalid(f.path("metadata"), "expected an object")),
        };
        let client = Self {
            id: f.string("id")?,
            refid: f.string("refid")?,
            name: f.string("name")?,
            email: f.opt_string("email")?,
            reseller_id: f.opt_string("resellerId")?,
            status,
            metadata,
            created_at: time(&mut f, "createdAt")?,
            updated_at: time(&mut f, "updatedAt")?,
        };
        f.finish(&[])?;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientAction::{Activate, Deactivate, Suspend};
    use ClientStatus::{Active, Inactive, Pending, Suspended};

    /// The whole transition table, every (from, action) pair.
    #[test]
    fn the_transition_table() {
        let table = [
            (Pending, Activate, Some(Active)),
            (Pending, Suspend, None),
            (Pending, Deactivate, Some(Inactive)),
            (Active, Activate, None),
            (Active, Suspend, Some(Suspended)),
            (Active, Deactivate, Some(Inactive)),
            (Suspended, Activate, Some(Active)),
            (Suspended, Suspend, None),
            (Suspended, Deactivate, Some(Inactive)),
            (Inactive, Activate, Some(Active)),
            (Inactive, Suspend, None),
            (Inactive, Deactivate, None),
        ];
        let at = DateTime::from_timestamp(0, 0).unwrap_or_default();
        for (from, action, to) in table {
            assert_eq!(action.from(from), to, "{from:?} {action:?}");
            let client = Client {
                status: from,
                ..Client::create(
                    ClientDraft {
                        name: Some("A".into()),
                        ..ClientDraft::default()
                    },
                    "cl_1".into(),
                    "CL-1".into(),
                    at,
                )
                .unwrap_or_else(|e| panic!("{e}"))
            };
            match (client.transition(action, at), to) {
                (Ok(next), Some(to)) => assert_eq!(next.status, to),
                (Err(e), None) => assert_eq!(e.code().as_str(), "STATUS_TRANSITION_DENIED"),
                (other, _) => panic!("{from:?} {action:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_stored_client_reads_back() {
        let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let draft = ClientDraft {
            name: Some("Acme".into()),
            email: Some("IT@Acme.example".into()),
            reseller_id: Some("rs_1".into()),
            metadata: None,
        };
        let client = Client::create(draft, "cl_1".into(), "CL-ABC".into(), at)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.email_key().as_deref(), Some("it@acme.example"));
        let json = serde_json::to_value(&client).unwrap_or_default();
        assert_eq!(Client::from_json(json, "c").ok(), Some(client));
        assert!(name("  ", "n").is_err());
        assert!(name(&"x".repeat(201), "n").is_err());
    }
}
