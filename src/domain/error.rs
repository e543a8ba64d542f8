//! The one error type of the engine.
//!
//! Every failure the engine can report is a variant here, with a stable code (the `code` of the
//! `AllyError` a JavaScript host sees), a hand-written message that names the field and the value,
//! and structured details. The bindings map this type once, in `src/wasm/error.rs`.

use std::fmt;

/// Stable error codes. A code may be added; none is renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidInput,
    InvalidConfig,
    UnknownTier,
    TierRestricted,
    NotFound,
    AlreadyExists,
    Conflict,
    StorageFailed,
    MailFailed,
    InsufficientCredits,
    ProvisioningHeld,
    IdempotencyMismatch,
    Forbidden,
    StatusTransitionDenied,
    DuplicateEmail,
    InvalidReseller,
    ResellerInactive,
}

impl ErrorCode {
    /// The code as a host sees it, e.g. `"INVALID_INPUT"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "INVALID_INPUT",
            Self::InvalidConfig => "INVALID_CONFIG",
            Self::UnknownTier => "UNKNOWN_TIER",
            Self::TierRestricted => "TIER_RESTRICTED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::Conflict => "CONFLICT",
            Self::StorageFailed => "STORAGE_FAILED",
            Self::MailFailed => "MAIL_FAILED",
            Self::InsufficientCredits => "INSUFFICIENT_CREDITS",
            Self::ProvisioningHeld => "PROVISIONING_HELD",
            Self::IdempotencyMismatch => "IDEMPOTENCY_MISMATCH",
            Self::Forbidden => "FORBIDDEN",
            Self::StatusTransitionDenied => "STATUS_TRANSITION_DENIED",
            Self::DuplicateEmail => "DUPLICATE_EMAIL",
            Self::InvalidReseller => "INVALID_RESELLER",
            Self::ResellerInactive => "RESELLER_INACTIVE",
        }
    }

    /// The HTTP status a service answers with for this code: the client's mistakes are 4xx
    /// (400 malformed, 402 the wallet cannot pay, 403 the reseller may not, 404 no such record,
    /// 409 the record's state or a concurrent writer is in the way, 422 well-formed but not
    /// acceptable), the host's are 5xx (500 its configuration, 502 its mailer, 503 its storage).
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidInput => 400,
            Self::InsufficientCredits => 402,
            Self::TierRestricted | Self::ProvisioningHeld | Self::Forbidden => 403,
            Self::ResellerInactive => 403,
            Self::NotFound => 404,
            Self::AlreadyExists | Self::Conflict | Self::DuplicateEmail => 409,
            Self::StatusTransitionDenied => 409,
            Self::UnknownTier | Self::IdempotencyMismatch | Self::InvalidReseller => 422,
            Self::InvalidConfig => 500,
            Self::MailFailed => 502,
            Self::StorageFailed => 503,
        }
    }
}

/// A failure, with enough context to say which field, which value and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A value handed to a function does not have the required form.
    /// `field` is a path such as `request.lines[2].quantity`.
    InvalidInput { field: String, reason: String },
    /// A configuration value is not acceptable; `key` is the config path, e.g. `tiers.gold.discount`.
    InvalidConfig { key: String, reason: String },
    /// The tier is not in the tier table in force.
    UnknownTier { tier: String },
    /// The product may not be sold by resellers of this tier.
    TierRestricted {
        sku: String,
        tier: String,
        field: String,
    },
    /// No record of this kind has this key.
    NotFound { entity: &'static str, key: String },
    /// A record with this unique value exists already.
    AlreadyExists {
        entity: &'static str,
        field: &'static str,
        value: String,
    },
    /// A write kept losing the race against concurrent writers.
    Conflict {
        entity: &'static str,
        key: String,
        attempts: u32,
    },
    /// The host's storage threw, rejected or answered out of contract.
    StorageFailed {
        operation: &'static str,
        reason: String,
    },
    /// The host's mailer threw or rejected.
    MailFailed { reason: String },
    /// The wallet cannot pay. For a bulk provision, `items` gives one result code per item.
    InsufficientCredits {
        reseller: String,
        balance: u64,
        requested: u64,
        items: Vec<&'static str>,
    },
    /// The reseller's metadata holds `hold_provisioning: true`.
    ProvisioningHeld { reseller: String },
    /// An idempotency key was used again with a different request.
    IdempotencyMismatch { key: String, reason: String },
    /// A reseller-scoped handle touched another reseller's data.
    Forbidden { scope: String, target: String },
    /// A record's status does not allow this change (e.g. approving a rejected application).
    StatusTransitionDenied {
        entity: &'static str,
        key: String,
        from: std::borrow::Cow<'static, str>,
        action: std::borrow::Cow<'static, str>,
    },
    /// Another record already uses this email.
    DuplicateEmail { entity: &'static str, email: String },
    /// The reseller named cannot take this (unknown, or not active).
    InvalidReseller { reseller: String, reason: String },
    /// The reseller is suspended or inactive: it may not spend credits.
    ResellerInactive {
        reseller: String,
        status: &'static str,
        reason: Option<String>,
    },
    /// A sum or difference of amounts left the range the engine holds exactly (`quantity` says
    /// which figure). Reported as `INVALID_INPUT`: only values beyond any real ledger get here.
    Overflow { quantity: String },
}

impl Error {
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidInput { .. } => ErrorCode::InvalidInput,
            Self::InvalidConfig { .. } => ErrorCode::InvalidConfig,
            Self::UnknownTier { .. } => ErrorCode::UnknownTier,
            Self::TierRestricted { .. } => ErrorCode::TierRestricted,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            Self::Conflict { .. } => ErrorCode::Conflict,
            Self::StorageFailed { .. } => ErrorCode::StorageFailed,
            Self::MailFailed { .. } => ErrorCode::MailFailed,
            Self::InsufficientCredits { .. } => ErrorCode::InsufficientCredits,
            Self::ProvisioningHeld { .. } => ErrorCode::ProvisioningHeld,
            Self::IdempotencyMismatch { .. } => ErrorCode::IdempotencyMismatch,
            Self::Forbidden { .. } => ErrorCode::Forbidden,
            Self::StatusTransitionDenied { .. } => ErrorCode::StatusTransitionDenied,
            Self::DuplicateEmail { .. } => ErrorCode::DuplicateEmail,
            Self::InvalidReseller { .. } => ErrorCode::InvalidReseller,
            Self::ResellerInactive { .. } => ErrorCode::ResellerInactive,
            Self::Overflow { .. } => ErrorCode::InvalidInput,
        }
    }

    /// Structured details as (name, value) pairs, in a stable order.
    #[must_use]
    pub fn details(&self) -> Vec<(&'static str, Detail)> {
        let text = self.text_details();
        let mut out: Vec<(&'static str, Detail)> = text
            .into_iter()
            .map(|(k, v)| (k, Detail::Text(v)))
            .collect();
        if let Self::Conflict { attempts, .. } = self {
            out.push(("attempts", Detail::Number(u64::from(*attempts))));
        }
        if let Self::InsufficientCredits {
            balance,
            requested,
            items,
            ..
        } = self
        {
            out.push(("balance", Detail::Number(*balance)));
            out.push(("requested", Detail::Number(*requested)));
            if !items.is_empty() {
                out.push(("items", Detail::Codes(items.clone())));
            }
        }
        out
    }

    fn text_details(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::InvalidInput { field, reason } => {
                vec![("field", field.clone()), ("reason", reason.clone())]
            }
            Self::InvalidConfig { key, reason } => {
                vec![("key", key.clone()), ("reason", reason.clone())]
            }
            Self::UnknownTier { tier } => vec![("tier", tier.clone())],
            Self::TierRestricted { sku, tier, field } => vec![
                ("sku", sku.clone()),
                ("tier", tier.clone()),
                ("field", field.clone()),
            ],
            Self::NotFound { entity, key } => {
                vec![("entity", (*entity).to_owned()), ("key", key.clone())]
            }
            Self::AlreadyExists {
                entity,
                field,
                value,
            } => vec![
                ("entity", (*entity).to_owned()),
                ("field", (*field).to_owned()),
                ("value", value.clone()),
            ],
            Self::Conflict { entity, key, .. } => {
                vec![("entity", (*entity).to_owned()), ("key", key.clone())]
            }
            Self::StorageFailed { operation, reason } => vec![
                ("operation", (*operation).to_owned()),
                ("reason", reason.clone()),
            ],
            Self::MailFailed { reason } => vec![("reason", reason.clone())],
            Self::InsufficientCredits { reseller, .. } | Self::ProvisioningHeld { reseller } => {
                vec![("reseller", reseller.clone())]
            }
            Self::IdempotencyMismatch { key, reason } => {
                vec![("key", key.clone()), ("reason", reason.clone())]
            }
            Self::Forbidden { scope, target } => {
                vec![("scope", scope.clone()), ("target", target.clone())]
            }
            Self::StatusTransitionDenied {
                entity,
                key,
                from,
                action,
            } => vec![
                ("entity", (*entity).to_owned()),
                ("key", key.clone()),
                ("from", from.to_string()),
                ("action", action.to_string()),
            ],
            Self::DuplicateEmail { entity, email } => {
                vec![("entity", (*entity).to_owned()), ("email", email.clone())]
            }
            Self::InvalidReseller { reseller, reason } => {
                vec![("reseller", reseller.clone()), ("reason", reason.clone())]
            }
            Self::ResellerInactive {
                reseller,
                status,
                reason,
            } => {
                let mut out = vec![
                    ("reseller", reseller.clone()),
                    ("status", (*status).to_owned()),
                ];
                if let Some(reason) = reason {
                    out.push(("reason", reason.clone()));
                }
                out
            }
            Self::Overflow { quantity } => vec![
                ("field", quantity.clone()),
                ("reason", "out of range".to_owned()),
            ],
        }
    }

    /// An overflow of the named figure: the error checked arithmetic returns.
    pub fn overflow(quantity: impl Into<String>) -> Self {
        Self::Overflow {
            quantity: quantity.into(),
        }
    }

    /// Shorthand for the most common failure.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Re-labels an input error as a configuration error: the same parsers read both, but a bad
    /// config must say `INVALID_CONFIG` and name the key.
    #[must_use]
    pub fn into_config_error(self) -> Self {
        match self {
            Self::InvalidInput { field, reason } => Self::InvalidConfig { key: field, reason },
            Self::UnknownTier { tier } => Self::InvalidConfig {
                key: "defaultTier".to_owned(),
                reason: format!("tier \"{tier}\" is not in the tier table"),
            },
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput { field, reason } => write!(f, "{field}: {reason}"),
            Self::InvalidConfig { key, reason } => write!(f, "config {key}: {reason}"),
            Self::UnknownTier { tier } => write!(f, "unknown tier \"{tier}\""),
            Self::TierRestricted { sku, tier, field } => write!(
                f,
                "{field}: product \"{sku}\" may not be sold by \"{tier}\" resellers"
            ),
            Self::NotFound { entity, key } => write!(f, "{entity} \"{key}\" not found"),
            Self::AlreadyExists {
                entity,
                field,
                value,
            } => write!(f, "a {entity} with {field} \"{value}\" already exists"),
            Self::Conflict {
                entity,
                key,
                attempts,
            } => write!(
                f,
                "{entity} \"{key}\" was changed concurrently; gave up after {attempts} attempts"
            ),
            Self::StorageFailed { operation, reason } => {
                write!(f, "storage {operation} failed: {reason}")
            }
            Self::MailFailed { reason } => write!(f, "mail send failed: {reason}"),
            Self::InsufficientCredits {
                reseller,
                balance,
                requested,
                items,
            } => {
                write!(
                    f,
                    "reseller \"{reseller}\" has {balance} credits, {requested} are needed"
                )?;
                if !items.is_empty() {
                    write!(f, " for all {} items; nothing was provisioned", items.len())?;
                }
                Ok(())
            }
            Self::ProvisioningHeld { reseller } => write!(
                f,
                "provisioning is on hold for reseller \"{reseller}\" (metadata hold_provisioning)"
            ),
            Self::IdempotencyMismatch { key, reason } => write!(
                f,
                "idempotency key \"{key}\" was used for a different request: {reason}"
            ),
            Self::Forbidden { scope, target } => write!(
                f,
                "a handle for reseller \"{scope}\" may not touch reseller \"{target}\""
            ),
            Self::StatusTransitionDenied {
                entity,
                key,
                from,
                action,
            } => write!(f, "{entity} \"{key}\" is {from}: it cannot be {action}"),
            Self::DuplicateEmail { entity, email } => {
                write!(f, "a {entity} with email \"{email}\" already exists")
            }
            Self::InvalidReseller { reseller, reason } => {
                write!(f, "reseller \"{reseller}\" cannot take clients: {reason}")
            }
            Self::ResellerInactive {
                reseller, status, ..
            } => write!(
                f,
                "reseller \"{reseller}\" is {status}: it may not provision until reactivated"
            ),
            Self::Overflow { quantity } => write!(
                f,
                "{quantity}: the result is beyond the range amounts are held in exactly"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// One value of an error's details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    Text(String),
    Number(u64),
    /// One code per item, e.g. a refused bulk provision.
    Codes(Vec<&'static str>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
