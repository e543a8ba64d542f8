//! Clients through the storage port: create (the email is unique, the reseller must exist and be
//! active), look up by id, refid or reseller, and move along the status transitions.

use serde_json::Value;

use super::ports::{Clock, Mailer, Storage, StoredRecord, WriteOutcome};
use super::{storage_failed, Ally, Versioned, ID_ATTEMPTS_MAX, RETRY_COUNT_MAX};
use crate::domain::client::{Client, ClientAction, ClientDraft};
use crate::domain::reseller::ResellerStatus;
use crate::domain::{Error, Result};

pub(super) const COLLECTION: &str = "clients";
/// An email is unique among one reseller's clients (or among standalone ones), not across the
/// network: a reseller's handle learns nothing of other resellers' clients from a refusal, and
/// cannot take an email away from another reseller.
const INDEX_EMAIL: &str = "resellerEmail";
const INDEX_REFID: &str = "refid";
const INDEX_RESELLER: &str = "resellerId";
const INDEX_STATUS: &str = "status";
/// The state record saying which indexes every stored client carries.
const STATE: &str = "client_state";
/// The version of the client indexes [`to_record`] gives.
const CLIENT_INDEXES: u64 = 1;

/// The unique indexes a client record carries (an email only when it has one).
fn unique(client: &Client) -> &'static [&'static str] {
    if client.email.is_some() {
        &[INDEX_EMAIL, INDEX_REFID]
    } else {
        &[INDEX_REFID]
    }
}

/// The value of the unique email index: the reseller (`-` for a standalone client), then the
/// email without ASCII case, apart by a unit separator no id or email holds.
fn email_index(client: &Client) -> Option<String> {
    let email = client.email_key()?;
    Some(format!(
        "{}\u{1f}{email}",
        client.reseller_id.as_deref().unwrap_or("-")
    ))
}

pub(super) fn to_record(client: &Client, version: u64) -> Result<StoredRecord> {
    let data = serde_json::to_string(client).map_err(|e| Error::StorageFailed {
        operation: "put",
        reason: format!("client could not be encoded: {e}"),
    })?;
    let mut indexes = vec![
        (INDEX_REFID.to_owned(), client.refid.clone()),
        (INDEX_STATUS.to_owned(), client.status.as_str().to_owned()),
    ];
    if let Some(email) = email_index(client) {
        indexes.push((INDEX_EMAIL.to_owned(), email));
    }
    if let Some(reseller) = &client.reseller_id {
        indexes.push((INDEX_RESELLER.to_owned(), reseller.clone()));
    }
    Ok(StoredRecord {
        id: client.id.clone(),
        version,
        data,
        indexes,
    })
}

pub(super) fn from_record(record: StoredRecord) -> Result<Versioned<Client>> {
    let unreadable = |reason: String| Error::StorageFailed {
        operation: "get",
        reason: format!("stored client \"{}\" is not readable: {reason}", record.id),
    };
    let json: Value = serde_json::from_str(&record.data).map_err(|e| unreadable(e.to_string()))?;
    let value = Client::from_json(json, "client").map_err(|e| unreadable(e.to_string()))?;
    Ok(Versioned {
        value,
        version: record.version,
    })
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// Creates a pending client. `DUPLICATE_EMAIL` when another client of the same reseller (or
    /// another standalone client) has the email (the storage's unique index settles it under
    /// concurrency); `INVALID_RESELLER` when the
    /// reseller is unknown or not active.
    pub async fn create_client(&self, draft: ClientDraft) -> Result<Versioned<Client>> {
        self.ensure_client_indexes().await?;
        if let Some(reseller_id) = &draft.reseller_id {
            let reseller = self.find_reseller(reseller_id).await?;
            let reason = match &reseller {
                None => Some("no such reseller".to_owned()),
                Some(r) if r.value.status != ResellerStatus::Active => {
                    Some(format!("it is {}", r.value.status.as_str()))
                }
                Some(_) => None,
            };
            if let Some(reason) = reason {
                return Err(Error::InvalidReseller {
                    reseller: reseller_id.clone(),
                    reason,
                });
            }
        }
        let at = self.now()?;
        for _ in 0..ID_ATTEMPTS_MAX {
            let (id, refid) = {
                let mut ids = self.ids.borrow_mut();
                (
                    ids.client_id(),
                    ids.client_refid(&self.config.client_refid_prefix),
                )
            };
            let client = Client::create(draft.clone(), id, refid, at)?;
            let record = to_record(&client, 1)?;
            let outcome = self
                .storage
                .put(COLLECTION, &record, 0, unique(&client))
                .await
                .map_err(storage_failed("put"))?;
            match outcome {
                WriteOutcome::Written => {
                    return Ok(Versioned {
                        value: client,
                        version: 1,
                    })
                }
                WriteOutcome::Duplicate { index } if index == INDEX_EMAIL => {
                    return Err(Error::DuplicateEmail {
                        entity: "client",
                        email: client.email.unwrap_or_default(),
                    })
                }
                // A refid or id collision: draw new ones.
                WriteOutcome::Duplicate { .. } | WriteOutcome::Stale => {}
            }
        }
        Err(Error::Conflict {
            entity: "client",
            key: "new client".to_owned(),
            attempts: ID_ATTEMPTS_MAX,
        })
    }

    /// Makes sure every stored client carries the indexes [`to_record`] gives: clients stored
    /// before the email index was per reseller are written again with it, once per storage (a
    /// state record says it is done; this instance remembers it). Each rewrite is
    /// compare-and-set at the version read, and moves the client's unique email claim.
    async fn ensure_client_indexes(&self) -> Result<()> {
        if self.client_indexes_done.get() {
            return Ok(());
        }
        // One scan at a time: the callers that waited find it done.
        let _held = self.client_indexes_lock.acquire().await;
        if self.client_indexes_done.get() {
            return Ok(());
        }
        let reindex = async |record| self.reindex_client(record).await;
        self.backfill_indexes(STATE, "clients", CLIENT_INDEXES, COLLECTION, reindex)
            .await?;
        self.client_indexes_done.set(true);
        Ok(())
    }

    /// Writes one stored client again with today's indexes, if it lacks any. A record no read
    /// accepts is left as it is (every other call refuses it too; the backfill must not stop
    /// every client's creation for it, nor name it to whoever creates one), and so is one that
    /// keeps changing under the rewrite (its writer writes today's indexes).
    async fn reindex_client(&self, mut record: StoredRecord) -> Result<()> {
        for _ in 0..RETRY_COUNT_MAX {
            let Ok(client) = from_record(record.clone()) else {
                return Ok(());
            };
            let next = to_record(&client.value, record.version + 1)?;
            let carried = next.indexes.len() == record.indexes.len()
                && next.indexes.iter().all(|w| record.indexes.contains(w));
            if carried {
                return Ok(());
            }
            // A duplicate here is a pair an older engine let in: left for an operator to see.
            match self
                .storage
                .put(COLLECTION, &next, record.version, unique(&client.value))
                .await
                .map_err(storage_failed("put"))?
            {
                WriteOutcome::Written | WriteOutcome::Duplicate { .. } => return Ok(()),
                WriteOutcome::Stale => {}
            }
            match self
                .storage
                .get(COLLECTION, &record.id)
                .await
                .map_err(storage_failed("get"))?
            {
                Some(again) => record = again,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    pub async fn find_client(&self, id: &str) -> Result<Option<Versioned<Client>>> {
        let record = self
            .storage
            .get(COLLECTION, id)
            .await
            .map_err(storage_failed("get"))?;
        record.map(from_record).transpose()
    }

    /// The client with this public refid, or `None`.
    pub async fn find_client_by_refid(&self, refid: &str) -> Result<Option<Versioned<Client>>> {
        let (mut page, _) = self
            .find_page(COLLECTION, Some((INDEX_REFID, refid)), None)
            .await?;
        if page.len() > 1 {
            return Err(Error::StorageFailed {
                operation: "find",
                reason: format!("unique index refid holds \"{refid}\" twice"),
            });
        }
        page.pop().map(from_record).transpose()
    }

    /// A reseller's clients, oldest first.
    pub async fn clients_of_reseller(&self, reseller_id: &str) -> Result<Vec<Versioned<Client>>> {
        let mut out = self
            .find_all(COLLECTION, Some((INDEX_RESELLER, reseller_id)), from_record)
            .await?;
        out.sort_by(|a, b| {
            (a.value.created_at, &a.value.id).cmp(&(b.value.created_at, &b.value.id))
        });
        Ok(out)
    }

    /// Moves a client along the transition table (`STATUS_TRANSITION_DENIED` otherwise).
    pub async fn transition_client(
        &self,
        id: &str,
        action: ClientAction,
    ) -> Result<Versioned<Client>> {
        let at = self.now()?;
        for _ in 0..RETRY_COUNT_MAX {
            let current = self.find_client(id).await?.ok_or_else(|| Error::NotFound {
                entity: "client",
                key: id.to_owned(),
            })?;
            let next = current.value.transition(action, at)?;
            let record = to_record(&next, current.version + 1)?;
            if self
                .put_at(COLLECTION, &record, current.version, unique(&next))
                .await?
            {
                return Ok(Versioned {
                    value: next,
                    version: record.version,
                });
            }
        }
        Err(Error::Conflict {
            entity: "client",
            key: id.to_owned(),
            attempts: RETRY_COUNT_MAX,
        })
    }
}
