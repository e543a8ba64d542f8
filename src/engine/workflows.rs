//! Onboarding and lifecycle progress through the storage port: one record per reseller in
//! `onboarding` (the tasks it completed, when and by whom) and one per client in `lifecycle`
//! (its stage and the moves that led there). The steps themselves are the config's.

use serde_json::{json, Value};

use super::ports::{Clock, Mailer, Storage, StoredRecord};
use super::{storage_failed, Ally, RETRY_COUNT_MAX};
use crate::domain::health::points_text;
use crate::domain::reseller::iso_time;
use crate::domain::{Error, Result};

const ONBOARDING: &str = "onboarding";
const LIFECYCLE: &str = "lifecycle";
/// The most moves a client's lifecycle history keeps (the oldest go first).
pub const LIFECYCLE_HISTORY_MAX: usize = 200;

fn unreadable(collection: &str, id: &str, reason: impl std::fmt::Display) -> Error {
    Error::StorageFailed {
        operation: "get",
        reason: format!("{collection} record \"{id}\" is not readable: {reason}"),
    }
}

/// The completed task keys of an onboarding record.
fn completed(record: &Value) -> Vec<String> {
    record["completed"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c["task"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// Reads a record (or `fresh` when there is none), changes it and writes it back by
    /// compare-and-set, reading again when another writer got there first.
    async fn upsert(
        &self,
        collection: &str,
        id: &str,
        fresh: impl Fn() -> Value,
        mut change: impl FnMut(&mut Value) -> Result<()>,
    ) -> Result<Value> {
        for _ in 0..RETRY_COUNT_MAX {
            let stored = self
                .storage
                .get(collection, id)
                .await
                .map_err(storage_failed("get"))?;
            let (mut value, version) = match stored {
                None => (fresh(), 0),
                Some(r) => {
                    let v: Value =
                        serde_json::from_str(&r.data).map_err(|e| unreadable(collection, id, e))?;
                    (v, r.version)
                }
            };
            change(&mut value)?;
            let record = StoredRecord {
                id: id.to_owned(),
                version: version + 1,
                data: value.to_string(),
                indexes: Vec::new(),
            };
            if self.put_at(collection, &record, version, &[]).await? {
                return Ok(value);
            }
        }
        Err(Error::Conflict {
            entity: collection_entity(collection),
            key: id.to_owned(),
            attempts: RETRY_COUNT_MAX,
        })
    }

    async fn read_progress(&self, collection: &str, id: &str) -> Result<Option<Value>> {
        self.storage
            .get(collection, id)
            .await
            .map_err(storage_failed("get"))?
            .map(|r| serde_json::from_str(&r.data).map_err(|e| unreadable(collection, id, e)))
            .transpose()
    }

    /// A reseller's onboarding: every task with whether it is done, when and by whom, which
    /// may be done now, and the progress over the required tasks.
    pub async fn onboarding(&self, reseller_id: &str) -> Result<Value> {
        let reseller = self.require_reseller(reseller_id).await?.value;
        let record = self.read_progress(ONBOARDING, &reseller.id).await?;
        Ok(self.onboarding_view(&reseller.id, record.as_ref()))
    }

    fn onboarding_view(&self, reseller_id: &str, record: Option<&Value>) -> Value {
        let list = &self.config.onboarding;
        let done = record.map(completed).unwrap_or_default();
        let available = list.available(&done);
        let tasks: Vec<Value> = list
            .tasks()
            .iter()
            .map(|t| {
                let entry = record.and_then(|r| {
                    r["completed"]
                        .as_array()
                        .and_then(|items| items.iter().find(|c| c["task"] == t.key.as_str()))
                });
                json!({
                    "key": t.key,
                    "title": t.title,
                    "required": t.required,
                    "dependsOn": t.depends_on,
                    "done": entry.is_some(),
                    "available": available.contains(&t.key.as_str()),
                    "completedAt": entry.map(|e| e["at"].clone()),
                    "completedBy": entry.map(|e| e["by"].clone()),
                })
            })
            .collect();
        let (completed, total, progress) = list.progress(&done);
        json!({
            "resellerId": reseller_id,
            "completed": completed,
            "total": total,
            "progress": points_text(i64::from(progress)),
            "done": completed == total,
            "tasks": tasks,
        })
    }

    /// Marks a task of the reseller's onboarding done; its dependencies must be done first.
    pub async fn complete_task(
        &self,
        reseller_id: &str,
        task: &str,
        by: Option<&str>,
    ) -> Result<Value> {
        let reseller = self.require_reseller(reseller_id).await?.value;
        let at = iso_time::format(self.now()?);
        let list = &self.config.onboarding;
        let fresh = || json!({ "resellerId": reseller.id, "completed": [] });
        let record = self
            .upsert(ONBOARDING, &reseller.id, fresh, |record| {
                list.check_complete(task, &completed(record))?;
                if let Some(items) = record["completed"].as_array_mut() {
                    items.push(json!({ "task": task, "at": at, "by": by }));
                }
                Ok(())
            })
            .await?;
        Ok(self.onboarding_view(&reseller.id, Some(&record)))
    }

    /// Marks a done task not done again, when no done task depends on it.
    pub async fn reopen_task(&self, reseller_id: &str, task: &str) -> Result<Value> {
        let reseller = self.require_reseller(reseller_id).await?.value;
        let list = &self.config.onboarding;
        let fresh = || json!({ "resellerId": reseller.id, "completed": [] });
        let record = self
            .upsert(ONBOARDING, &reseller.id, fresh, |record| {
                list.check_reopen(task, &completed(record))?;
                if let Some(items) = record["completed"].as_array_mut() {
                    items.retain(|c| c["task"] != task);
                }
                Ok(())
            })
            .await?;
        Ok(self.onboarding_view(&reseller.id, Some(&record)))
    }

    /// A client's lifecycle: its stage (the first until it moves), the stages it may move to,
    /// how far along it is, and its moves.
    pub async fn lifecycle(&self, client_id: &str) -> Result<Value> {
        let client = self.require_client(client_id).await?;
        let record = self.read_progress(LIFECYCLE, &client).await?;
        Ok(self.lifecycle_view(&client, record.as_ref()))
    }

    async fn require_client(&self, id: &str) -> Result<String> {
        match self.find_client(id).await? {
            Some(found) => Ok(found.value.id),
            None => Err(Error::NotFound {
                entity: "client",
                key: id.to_owned(),
            }),
        }
    }

    fn lifecycle_view(&self, client_id: &str, record: Option<&Value>) -> Value {
        let life = &self.config.lifecycle;
        let key = record
            .and_then(|r| r["stage"].as_str())
            .filter(|k| life.stage(k, "stage").is_ok())
            .unwrap_or(&life.first().key)
            .to_owned();
        let stage = life.stage(&key, "stage").unwrap_or_else(|_| life.first());
        json!({
            "clientId": client_id,
            "stage": stage.key,
            "title": stage.title,
            "next": stage.next,
            "progress": points_text(i64::from(life.progress(&stage.key))),
            "history": record.map_or(Value::Array(Vec::new()), |r| r["history"].clone()),
        })
    }

    /// Moves a client to a stage its current stage lists (`STATUS_TRANSITION_DENIED`
    /// otherwise).
    pub async fn move_stage(
        &self,
        client_id: &str,
        stage: &str,
        by: Option<&str>,
    ) -> Result<Value> {
        let client = self.require_client(client_id).await?;
        let at = iso_time::format(self.now()?);
        let life = &self.config.lifecycle;
        life.stage(stage, "stage")?;
        let first = life.first().key.clone();
        let fresh = || json!({ "clientId": client, "stage": first, "history": [] });
        let record = self
            .upsert(LIFECYCLE, &client, fresh, |record| {
                let from = record["stage"].as_str().unwrap_or(&first).to_owned();
                life.check_move(&client, &from, stage)?;
                record["stage"] = stage.into();
                if let Some(history) = record["history"].as_array_mut() {
                    history.push(json!({ "from": from, "to": stage, "at": at, "by": by }));
                    let excess = history.len().saturating_sub(LIFECYCLE_HISTORY_MAX);
                    history.drain(..excess);
                }
                Ok(())
            })
            .await?;
        Ok(self.lifecycle_view(&client, Some(&record)))
    }
}

fn collection_entity(collection: &str) -> &'static str {
    if collection == ONBOARDING {
        "onboarding"
    } else {
        "lifecycle"
    }
}
