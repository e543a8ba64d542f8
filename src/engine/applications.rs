//! Reseller applications through the storage port: submit, approve (which creates or activates
//! the reseller with the approved commission rate), reject.

use serde_json::Value;

use super::ports::{Clock, Mailer, Storage, StoredRecord, WriteOutcome};
use super::{storage_failed, Ally, Versioned, RETRY_COUNT_MAX};
use crate::domain::application::{Application, ApplicationStatus};
use crate::domain::money::Rate;
use crate::domain::reseller::{Reseller, ResellerDraft, UserId};
use crate::domain::{Error, Result};

const COLLECTION: &str = "applications";
const INDEX_STATUS: &str = "status";
const INDEX_EMAIL: &str = "email";

fn to_record(application: &Application, version: u64) -> Result<StoredRecord> {
    let data = serde_json::to_string(application).map_err(|e| Error::StorageFailed {
        operation: "put",
        reason: format!("application could not be encoded: {e}"),
    })?;
    Ok(StoredRecord {
        id: application.id.clone(),
        version,
        data,
        indexes: vec![
            (
                INDEX_STATUS.to_owned(),
                application.status.as_str().to_owned(),
            ),
            (
                INDEX_EMAIL.to_owned(),
                application.email.to_ascii_lowercase(),
            ),
        ],
    })
}

fn from_record(record: StoredRecord) -> Result<Versioned<Application>> {
    let unreadable = |reason: String| Error::StorageFailed {
        operation: "get",
        reason: format!(
            "stored application \"{}\" is not readable: {reason}",
            record.id
        ),
    };
    let json: Value = serde_json::from_str(&record.data).map_err(|e| unreadable(e.to_string()))?;
    let value =
        Application::from_json(json, "application").map_err(|e| unreadable(e.to_string()))?;
    Ok(Versioned {
        value,
        version: record.version,
    })
}

/// The system user an approved application's reseller belongs to.
fn applicant_user(application_id: &str) -> UserId {
    UserId::Text(format!("application:{application_id}"))
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// Records a pending application from the applicant's form.
    pub async fn submit_application(&self, form: Value) -> Result<Application> {
        let at = self.now()?;
        let id = self.ids.borrow_mut().application_id();
        let application = Application::submit(form, id, at)?;
        let outcome = self
            .storage
            .put(COLLECTION, &to_record(&application, 1)?, 0, &[])
            .await
            .map_err(storage_failed("put"))?;
        match outcome {
            WriteOutcome::Written => Ok(application),
            _ => Err(Error::Conflict {
                entity: "application",
                key: application.id,
                attempts: 1,
            }),
        }
    }

    pub async fn find_application(&self, id: &str) -> Result<Option<Versioned<Application>>> {
        let record = self
            .storage
            .get(COLLECTION, id)
            .await
            .map_err(storage_failed("get"))?;
        record.map(from_record).transpose()
    }

    async fn require_application(&self, id: &str) -> Result<Versioned<Application>> {
        self.find_application(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: "application",
                key: id.to_owned(),
            })
    }

    /// Applications, oldest first; with a status, only those.
    pub async fn list_applications(
        &self,
        status: Option<ApplicationStatus>,
    ) -> Result<Vec<Application>> {
        let index = status.map(|s| (INDEX_STATUS, s.as_str()));
        let mut out = self
            .find_all(COLLECTION, index, |r| from_record(r).map(|v| v.value))
            .await?;
        out.sort_by(|a, b| (a.submitted_at, &a.id).cmp(&(b.submitted_at, &b.id)));
        Ok(out)
    }

    /// Approves a pending application: creates the reseller (or activates the one an earlier,
    /// interrupted approval created) with the approved rate, then records the decision.
    pub async fn approve_application(
        &self,
        id: &str,
        commission_rate: Rate,
        notes: Option<String>,
        approved_by: String,
    ) -> Result<(Application, Versioned<Reseller>)> {
        let current = self.require_application(id).await?;
        let at = self.now()?;
        let plan = &self.config.commission_plan;
        if plan.base == crate::domain::commission::BaseRule::OwnRate {
            plan.check_pays_at_most_the_payment(commission_rate, "commissionRate")?;
        }
        // Every check the decision makes, before anything is written.
        current.value.approve(
            commission_rate,
            notes.clone(),
            approved_by.clone(),
            String::new(),
            at,
        )?;
        let reseller = self
            .applicant_reseller(&current.value, commission_rate)
            .await?;
        let mut current = current;
        for _ in 0..RETRY_COUNT_MAX {
            match current.value.status {
                ApplicationStatus::Pending => {}
                // A concurrent approval of the same application got there first.
                ApplicationStatus::Approved
                    if current.value.reseller_id.as_deref() == Some(reseller.value.id.as_str()) =>
                {
                    return Ok((current.value, reseller));
                }
                _ => {
                    // Rejected meanwhile: the reseller made for it must not stay active.
                    self.update_reseller(&reseller.value.id, |r| Ok(r.deactivated(at)))
                        .await?;
                }
            }
            let next = current.value.approve(
                commission_rate,
                notes.clone(),
                approved_by.clone(),
                reseller.value.id.clone(),
                at,
            )?;
            let record = to_record(&next, current.version + 1)?;
            let outcome = self
                .storage
                .put(COLLECTION, &record, current.version, &[])
                .await
                .map_err(storage_failed("put"))?;
            if outcome == WriteOutcome::Written {
                return Ok((next, reseller));
            }
            current = self.require_application(id).await?;
        }
        Err(Error::Conflict {
            entity: "application",
            key: id.to_owned(),
            attempts: RETRY_COUNT_MAX,
        })
    }

    /// The applicant's reseller, created or (after an interrupted approval) activated.
    async fn applicant_reseller(
        &self,
        application: &Application,
        rate: Rate,
    ) -> Result<Versioned<Reseller>> {
        let user = applicant_user(&application.id);
        if let Some(existing) = self.find_reseller_by_user(&user).await? {
            let at = self.now()?;
            return self
                .update_reseller(&existing.value.id, |r| Ok(r.activated(rate, at)))
                .await;
        }
        let draft = ResellerDraft {
            user_id: Some(user.clone()),
            company_name: Some(application.business_name.clone()),
            email: Some(application.email.clone()),
            commission_rate: Some(rate),
            ..ResellerDraft::default()
        };
        match self.create_reseller(draft).await {
            Err(Error::AlreadyExists { .. }) => self
                .find_reseller_by_user(&user)
                .await?
                .ok_or_else(|| Error::StorageFailed {
                    operation: "find",
                    reason: format!("the reseller of {user:?} was reported and then not found"),
                }),
            other => other,
        }
    }

    /// Rejects a pending application; the reason is required.
    pub async fn reject_application(
        &self,
        id: &str,
        reason: String,
        rejected_by: String,
    ) -> Result<Application> {
        let at = self.now()?;
        for _ in 0..RETRY_COUNT_MAX {
            let current = self.require_application(id).await?;
            let next = current
                .value
                .reject(reason.clone(), rejected_by.clone(), at)?;
            let record = to_record(&next, current.version + 1)?;
            let outcome = self
                .storage
                .put(COLLECTION, &record, current.version, &[])
                .await
                .map_err(storage_failed("put"))?;
            if outcome == WriteOutcome::Written {
                return Ok(next);
            }
        }
        Err(Error::Conflict {
            entity: "application",
            key: id.to_owned(),
            attempts: RETRY_COUNT_MAX,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::domain::config::Config;
    use crate::domain::reseller::ResellerStatus;
    use crate::engine::executor::block_on;
    use crate::engine::memory::MemoryStorage;
    use crate::engine::ports::{FixedClock, NoMailer};

    fn run<F: std::future::Future>(future: F) -> F::Output {
        block_on(future, 16).unwrap_or_else(|| panic!("the in-memory port suspended"))
    }

    #[test]
    fn an_interrupted_approval_is_finished_by_the_next_one_with_the_same_reseller() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
            .single()
            .unwrap_or_default();
        let ally = Ally::new(
            Config::default(),
            MemoryStorage::new(),
            NoMailer,
            FixedClock(at),
            9,
        );
        let form = json!({
            "name": "Ada", "email": "ada@abc.example", "phone": "555 0100", "businessName": "ABC",
            "businessAddress": "1 Main St", "businessType": "individual", "expectedCustomers": 3,
            "termsAccepted": true,
        });
        let app = run(ally.submit_application(form)).unwrap_or_else(|e| panic!("{e}"));
        let rate = Rate::from_units(1200).unwrap_or(Rate::ZERO);
        // The reseller was made, then the approval was lost before the application was written;
        // since then someone suspended it.
        let made = run(ally.applicant_reseller(&app, rate)).unwrap_or_else(|e| panic!("{e}"));
        run(ally.update_reseller(&made.value.id, |r| {
            let mut next = r.clone();
            next.status = ResellerStatus::Suspended;
            Ok(next)
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let (approved, reseller) =
            run(ally.approve_application(&app.id, rate, None, "admin".into()))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reseller.value.id, made.value.id,
            "the same reseller, not a second one"
        );
        assert_eq!(reseller.value.status, ResellerStatus::Active, "activated");
        assert_eq!(
            approved.reseller_id.as_deref(),
            Some(made.value.id.as_str())
        );
        assert_eq!(ally.storage().count("resellers"), 1);
    }
}
