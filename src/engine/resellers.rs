//! Reseller operations through the storage port.

use std::rc::Rc;

use serde_json::Value;

use super::ports::{Clock, Mailer, Query, Storage, StoredRecord, WriteOutcome};
use super::{
    storage_failed, Ally, ID_ATTEMPTS_MAX, LIST_SIZE_MAX, PARSED_RESELLERS_MAX, RETRY_COUNT_MAX,
};
use crate::domain::commission::BaseRule;
use crate::domain::config::Config;
use crate::domain::money::{Credits, Rate};
use crate::domain::reseller::{
    self, Reseller, ResellerDraft, ResellerStatus, StatusChange, UserId,
};
use crate::domain::{Error, Result};

pub(super) const COLLECTION: &str = "resellers";
const INDEX_USER: &str = "userId";
const INDEX_REFID: &str = "refid";
const INDEX_TIER: &str = "tier";
const INDEX_STATUS: &str = "status";
const INDEX_PARENT: &str = "parentId";

/// The record every move in the hierarchy is claimed through.
const HIERARCHY: &str = "hierarchy";
const HIERARCHY_EDIT: &str = "edit";

/// A move of `child` under `parent`, claimed in the edit record and not yet known to be
/// written: the next move finishes it first. `child_version` is the version of the child the
/// move is written at.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HierarchyEdit {
    child: String,
    parent: Option<String>,
    child_version: u64,
}

fn edit_record(edit: Option<&HierarchyEdit>, version: u64) -> StoredRecord {
    let edit = edit.map(|e| {
        serde_json::json!({ "child": e.child, "parent": e.parent, "childVersion": e.child_version })
    });
    StoredRecord {
        id: HIERARCHY_EDIT.to_owned(),
        version,
        data: serde_json::json!({ "edit": edit }).to_string(),
        indexes: Vec::new(),
    }
}

/// A stored value with the version its next compare-and-set write must name.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// The reference's scopes: by tier, by status, or both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResellerFilter {
    pub tier: Option<String>,
    pub status: Option<ResellerStatus>,
}

pub(super) fn to_record(reseller: &Reseller, version: u64) -> Result<StoredRecord> {
    let data = serde_json::to_string(reseller).map_err(|e| Error::StorageFailed {
        operation: "put",
        reason: format!("reseller could not be encoded: {e}"),
    })?;
    Ok(StoredRecord {
        id: reseller.id.clone(),
        version,
        data,
        indexes: [
            (INDEX_USER.to_owned(), reseller.user_id.key()),
            (INDEX_REFID.to_owned(), reseller.refid.clone()),
            (INDEX_TIER.to_owned(), reseller.tier.clone()),
            (INDEX_STATUS.to_owned(), reseller.status.as_str().to_owned()),
        ]
        .into_iter()
        .chain(
            reseller
                .parent_id
                .clone()
                .map(|parent| (INDEX_PARENT.to_owned(), parent)),
        )
        .collect(),
    })
}

pub(super) fn from_record(record: StoredRecord) -> Result<Versioned<Reseller>> {
    let unreadable = |reason: String| Error::StorageFailed {
        operation: "get",
        reason: format!(
            "stored reseller \"{}\" is not readable: {reason}",
            record.id
        ),
    };
    let json: Value = serde_json::from_str(&record.data).map_err(|e| unreadable(e.to_string()))?;
    let value = Reseller::from_json(json, "reseller").map_err(|e| unreadable(e.to_string()))?;
    if value.id != record.id {
        return Err(Error::StorageFailed {
            operation: "get",
            reason: format!("record \"{}\" holds reseller \"{}\"", record.id, value.id),
        });
    }
    Ok(Versioned {
        value,
        version: record.version,
    })
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// Creates a reseller. A second reseller for the same user is `ALREADY_EXISTS`; the unique
    /// user index in storage makes that hold under concurrency too.
    pub async fn create_reseller(&self, draft: ResellerDraft) -> Result<Versioned<Reseller>> {
        let at = self.now()?;
        for _ in 0..ID_ATTEMPTS_MAX {
            let (id, refid) = {
                let mut ids = self.ids.borrow_mut();
                (ids.reseller_id(), ids.reseller_refid())
            };
            let reseller = reseller::create(
                draft.clone(),
                id,
                refid,
                &self.config.pricing.tiers,
                &self.config.default_tier,
                at,
            )?;
            let record = to_record(&reseller, 1)?;
            let outcome = self
                .storage
                .put(COLLECTION, &record, 0, &[INDEX_USER, INDEX_REFID])
                .await
                .map_err(storage_failed("put"))?;
            match outcome {
                WriteOutcome::Written => {
                    if self.config.auto_provision_wallet {
                        // A failure here loses nothing: the first credit operation opens the
                        // wallet when it finds none.
                        let _ = self.create_wallet_record(&reseller).await;
                    }
                    return Ok(Versioned {
                        value: reseller,
                        version: 1,
                    });
                }
                WriteOutcome::Duplicate { index } if index == INDEX_USER => {
                    return Err(Error::AlreadyExists {
                        entity: "reseller",
                        field: "userId",
                        value: reseller.user_id.key(),
                    })
                }
                // The random id or refid collided: draw new ones.
                WriteOutcome::Duplicate { .. } | WriteOutcome::Stale => {}
            }
        }
        Err(Error::Conflict {
            entity: "reseller",
            key: "new".to_owned(),
            attempts: ID_ATTEMPTS_MAX,
        })
    }

    /// The reseller with this id, or `None`.
    pub async fn find_reseller(&self, id: &str) -> Result<Option<Versioned<Reseller>>> {
        let record = self
            .storage
            .get(COLLECTION, id)
            .await
            .map_err(storage_failed("get"))?;
        record.map(from_record).transpose()
    }

    /// The reseller with this id, or `NOT_FOUND`, shared: a record whose version and text are
    /// those of the last one read is not parsed again.
    pub(super) async fn require_reseller_shared(&self, id: &str) -> Result<Rc<Reseller>> {
        self.require_reseller_versioned(id).await.map(|(_, r)| r)
    }

    /// [`Self::require_reseller_shared`] with the version it was read at.
    pub(super) async fn require_reseller_versioned(&self, id: &str) -> Result<(u64, Rc<Reseller>)> {
        let record = self
            .storage
            .get(COLLECTION, id)
            .await
            .map_err(storage_failed("get"))?
            .ok_or_else(|| Error::NotFound {
                entity: "reseller",
                key: id.to_owned(),
            })?;
        if let Some((version, data, reseller)) = self.parsed.borrow().get(id) {
            if *version == record.version && *data == record.data {
                return Ok((*version, Rc::clone(reseller)));
            }
        }
        let version = record.version;
        let data = record.data.clone();
        let reseller = Rc::new(from_record(record)?.value);
        let mut parsed = self.parsed.borrow_mut();
        if parsed.len() >= PARSED_RESELLERS_MAX {
            parsed.clear();
        }
        parsed.insert(id.to_owned(), (version, data, Rc::clone(&reseller)));
        Ok((version, reseller))
    }

    /// The reseller as this instance last read it, with its version, without a read: only for
    /// a write that names that version as its guard (a provision's append), so that a change
    /// since is refused by the storage instead of acted on.
    pub(super) fn cached_reseller(&self, id: &str) -> Option<(u64, Rc<Reseller>)> {
        let parsed = self.parsed.borrow();
        parsed.get(id).map(|(v, _, r)| (*v, Rc::clone(r)))
    }

    /// Drops the cached reseller: the storage said it changed.
    pub(super) fn forget_reseller(&self, id: &str) {
        self.parsed.borrow_mut().remove(id);
    }

    /// `NOT_FOUND` unless a reseller-scoped handle's reseller exists: what every scoped call
    /// checks first, so that `asReseller` of an unknown id fails at its first call instead of
    /// answering empty lists. `None` (an unscoped handle) passes.
    pub async fn require_scope(&self, scope: Option<&str>) -> Result<()> {
        match scope {
            Some(id) => self.require_reseller_shared(id).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// The reseller a call of a handle is for. `named` is what the caller passed: a reseller's
    /// id or its refid, or nothing. An unscoped handle (`scope` `None`) takes the id named. A
    /// reseller's handle takes its own reseller when none is named, and its own id or refid;
    /// any other reseller answers exactly as a missing one does (`NOT_FOUND` naming only what
    /// was passed), so that a handle learns nothing of the resellers that are not its own.
    pub async fn scoped_reseller(
        &self,
        scope: Option<&str>,
        named: Option<&str>,
    ) -> Result<String> {
        let missing = |key: &str| Error::NotFound {
            entity: "reseller",
            key: key.to_owned(),
        };
        match (scope, named) {
            (None, Some(id)) => Ok(id.to_owned()),
            (None, None) => Err(Error::invalid(
                "reseller",
                "expected a reseller record or its id (a string)",
            )),
            (Some(own), None) => Ok(own.to_owned()),
            (Some(own), Some(id)) if id == own => Ok(own.to_owned()),
            // Its own refid, read from its own record: what is looked up never depends on what
            // was named, so another reseller's refid and a missing one cost the same.
            (Some(own), Some(other)) => match self.find_reseller(own).await? {
                Some(found) if found.value.refid == other => Ok(own.to_owned()),
                _ => Err(missing(other)),
            },
        }
    }

    /// The reseller with this id, or `NOT_FOUND`.
    pub async fn require_reseller(&self, id: &str) -> Result<Versioned<Reseller>> {
        self.find_reseller(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: "reseller",
                key: id.to_owned(),
            })
    }

    /// The reseller profile of a system user, or `None`.
    pub async fn find_reseller_by_user(
        &self,
        user: &UserId,
    ) -> Result<Option<Versioned<Reseller>>> {
        self.find_unique(INDEX_USER, &user.key()).await
    }

    /// The reseller with this public reference, or `None`.
    pub async fn find_reseller_by_refid(&self, refid: &str) -> Result<Option<Versioned<Reseller>>> {
        self.find_unique(INDEX_REFID, refid).await
    }

    async fn find_unique(&self, index: &str, value: &str) -> Result<Option<Versioned<Reseller>>> {
        let query = Query {
            index: Some((index, value)),
            after: None,
            limit: 2,
        };
        let mut found = self
            .storage
            .find(COLLECTION, query)
            .await
            .map_err(storage_failed("find"))?;
        if found.len() > 1 {
            return Err(Error::StorageFailed {
                operation: "find",
                reason: format!("unique index {index} holds \"{value}\" twice"),
            });
        }
        found.pop().map(from_record).transpose()
    }

    /// Resellers matching `filter`, oldest first, at most [`LIST_SIZE_MAX`].
    pub async fn list_resellers(
        &self,
        filter: &ResellerFilter,
    ) -> Result<Vec<Versioned<Reseller>>> {
        if let Some(tier) = &filter.tier {
            self.config.pricing.tiers.get(tier)?;
        }
        let status = filter.status.map(ResellerStatus::as_str);
        let index = match (&filter.tier, status) {
            (Some(tier), _) => Some((INDEX_TIER, tier.as_str())),
            (None, Some(status)) => Some((INDEX_STATUS, status)),
            (None, None) => None,
        };
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self.find_page(COLLECTION, index, after.as_deref()).await?;
            for record in page {
                let found = from_record(record)?;
                let tier_ok = filter.tier.as_ref().is_none_or(|t| &found.value.tier == t);
                let status_ok = filter.status.is_none_or(|s| found.value.status == s);
                if tier_ok && status_ok {
                    out.push(found);
                }
            }
            if out.len() > LIST_SIZE_MAX {
                return Err(Error::invalid(
                    "filter",
                    format!("more than {LIST_SIZE_MAX} resellers match; narrow the filter"),
                ));
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        // Ids are unique, so an unstable sort gives one order.
        out.sort_unstable_by(|a, b| {
            (a.value.created_at, &a.value.id).cmp(&(b.value.created_at, &b.value.id))
        });
        Ok(out)
    }

    /// Sets (or, with `None`, removes) one metadata key, retrying on concurrent writes.
    pub async fn update_reseller_metadata(
        &self,
        id: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<Versioned<Reseller>> {
        let at = self.now()?;
        self.update_reseller(id, |current| current.with_metadata(key, value.clone(), at))
            .await
    }

    /// Sets (or clears) a reseller's own commission rate.
    pub async fn set_commission_rate(
        &self,
        id: &str,
        rate: Option<Rate>,
    ) -> Result<Versioned<Reseller>> {
        let plan = &self.config.commission_plan;
        if let (Some(rate), BaseRule::OwnRate) = (rate, &plan.base) {
            plan.check_pays_at_most_the_payment(rate, "rate")?;
        }
        let at = self.now()?;
        self.update_reseller(id, |current| Ok(current.with_commission_rate(rate, at)))
            .await
    }

    /// Suspends, reactivates or deactivates a reseller (retrying on concurrent writes). A
    /// suspended or inactive reseller's provisions are refused with `RESELLER_INACTIVE`; its
    /// wallet, clients and commission stay as they are. Repeating a change writes nothing.
    pub async fn set_reseller_status(
        &self,
        id: &str,
        change: StatusChange,
    ) -> Result<Versioned<Reseller>> {
        let at = self.now()?;
        self.update_reseller_if(id, |current| current.status_change(change.clone(), at))
            .await
    }

    /// Puts a reseller under `parent` (or at the top, for `None`). Refused with
    /// `INVALID_INPUT` when the reseller would become its own ancestor or a chain would grow
    /// past `hierarchyLevelsMax`; `NOT_FOUND` for an unknown parent.
    ///
    /// Moves are serialised through one record (see [`HierarchyEdit`]): a move is checked
    /// against the tree as it stands, then claimed by a compare-and-set of that record, which
    /// fails if any other move was claimed since the check. So two moves at once, in this
    /// instance or another, can never build a cycle or too long a chain between them. A move
    /// another call claimed and did not finish (it failed or was dropped) is finished by the
    /// next move.
    pub async fn set_parent(&self, id: &str, parent: Option<&str>) -> Result<Versioned<Reseller>> {
        for _ in 0..RETRY_COUNT_MAX {
            let (pending, version) = self.hierarchy_edit().await?;
            if let Some(edit) = pending {
                self.finish_edit(edit, version).await?;
                continue;
            }
            let child = self.require_reseller(id).await?;
            let ancestors = match parent {
                None => Vec::new(),
                Some(parent) => self.ancestors(parent).await?,
            };
            let below = self.levels_below(&child.value.id).await?;
            reseller::check_parent(
                &child.value.id,
                &ancestors,
                below,
                self.config.hierarchy_levels_max,
            )?;
            let edit = HierarchyEdit {
                child: child.value.id.clone(),
                parent: ancestors.first().cloned(),
                child_version: child.version,
            };
            if !self.put_edit(Some(&edit), version).await? {
                continue;
            }
            return self.finish_edit(edit, version + 1).await;
        }
        Err(Error::Conflict {
            entity: "hierarchy",
            key: id.to_owned(),
            attempts: RETRY_COUNT_MAX,
        })
    }

    /// The move claimed and not finished, if any, and the version of the record that holds it.
    async fn hierarchy_edit(&self) -> Result<(Option<HierarchyEdit>, u64)> {
        let Some(record) = self
            .storage
            .get(HIERARCHY, HIERARCHY_EDIT)
            .await
            .map_err(storage_failed("get"))?
        else {
            return Ok((None, 0));
        };
        let unreadable = |reason: String| Error::StorageFailed {
            operation: "get",
            reason: format!("the stored hierarchy edit is not readable: {reason}"),
        };
        let json: Value =
            serde_json::from_str(&record.data).map_err(|e| unreadable(e.to_string()))?;
        let edit = match json.get("edit") {
            None | Some(Value::Null) => None,
            Some(edit) => {
                let text = |key: &str| edit.get(key).and_then(Value::as_str).map(str::to_owned);
                Some(HierarchyEdit {
                    child: text("child").ok_or_else(|| unreadable("no child".to_owned()))?,
                    parent: text("parent"),
                    child_version: edit
                        .get("childVersion")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| unreadable("no childVersion".to_owned()))?,
                })
            }
        };
        Ok((edit, record.version))
    }

    /// Writes the claimed move `edit` (held by the edit record at `version`) and clears the
    /// claim. The child is written only at the version the claim names: a write by a call that
    /// fell behind (the move finished by another, and the child moved again since) is stale.
    /// A child written since the claim by something other than a move (its rate, its metadata)
    /// has the claim renewed at its new version first. The child as it stands after.
    async fn finish_edit(
        &self,
        mut edit: HierarchyEdit,
        mut version: u64,
    ) -> Result<Versioned<Reseller>> {
        let at = self.now()?;
        for _ in 0..RETRY_COUNT_MAX {
            let child = self.require_reseller(&edit.child).await?;
            let done = child.value.parent_id == edit.parent;
            if !done && child.version == edit.child_version {
                let next = child.value.with_parent(edit.parent.clone(), at);
                let record = to_record(&next, child.version + 1)?;
                if !self
                    .put_at(
                        COLLECTION,
                        &record,
                        child.version,
                        &[INDEX_USER, INDEX_REFID],
                    )
                    .await?
                {
                    continue;
                }
                self.clear_edit(version).await?;
                return Ok(Versioned {
                    value: next,
                    version: record.version,
                });
            }
            if done {
                self.clear_edit(version).await?;
                return Ok(child);
            }
            // Written since the claim, not moved: renew the claim at the child's version.
            edit.child_version = child.version;
            if !self.put_edit(Some(&edit), version).await? {
                // Another call renewed or finished it: follow the claim while it is this move's.
                match self.hierarchy_edit().await? {
                    (Some(now), at_version)
                        if now.child == edit.child && now.parent == edit.parent =>
                    {
                        edit = now;
                        version = at_version;
                        continue;
                    }
                    _ => return self.require_reseller(&edit.child).await,
                }
            }
            version += 1;
        }
        Err(Error::Conflict {
            entity: "reseller",
            key: edit.child,
            attempts: RETRY_COUNT_MAX,
        })
    }

    /// Clears the claim held at `version`; one another call cleared (or moved on) is left.
    async fn clear_edit(&self, version: u64) -> Result<()> {
        self.put_edit(None, version).await.map(|_| ())
    }

    /// Writes the edit record (a claim, or none) over the one at `version`; false when it has
    /// moved on since.
    async fn put_edit(&self, edit: Option<&HierarchyEdit>, version: u64) -> Result<bool> {
        self.put_at(HIERARCHY, &edit_record(edit, version + 1), version, &[])
            .await
    }

    /// `id` and the resellers above it, nearest first (`NOT_FOUND` if `id` is unknown). A
    /// stored chain longer than the bound is reported, not followed forever.
    async fn ancestors(&self, id: &str) -> Result<Vec<String>> {
        let mut chain = vec![self.require_reseller(id).await?.value];
        while let Some(parent) = chain.last().and_then(|r| r.parent_id.clone()) {
            if chain.len() > Config::HIERARCHY_LEVELS_MAX || chain.iter().any(|r| r.id == parent) {
                return Err(Error::StorageFailed {
                    operation: "get",
                    reason: format!(
                        "the stored parents above \"{id}\" form a cycle or too long a chain"
                    ),
                });
            }
            chain.push(self.require_reseller(&parent).await?.value);
        }
        Ok(chain.into_iter().map(|r| r.id).collect())
    }

    /// The resellers directly under `id`, oldest first.
    pub async fn children(&self, id: &str) -> Result<Vec<Versioned<Reseller>>> {
        let mut out = self
            .find_all(COLLECTION, Some((INDEX_PARENT, id)), from_record)
            .await?;
        out.sort_by(|a, b| {
            (a.value.created_at, &a.value.id).cmp(&(b.value.created_at, &b.value.id))
        });
        Ok(out)
    }

    /// How many levels of resellers sit under `id` (0 for none). A stored cycle that comes back
    /// to `id` stops there: moving `id` is what breaks it (its own parent link goes), so the
    /// levels counted are those the tree has after the move.
    async fn levels_below(&self, id: &str) -> Result<usize> {
        let mut level = vec![id.to_owned()];
        let mut depth = 0;
        loop {
            let mut next = Vec::new();
            for parent in &level {
                next.extend(
                    self.children(parent)
                        .await?
                        .into_iter()
                        .map(|c| c.value.id)
                        .filter(|c| c != id),
                );
            }
            if next.is_empty() {
                return Ok(depth);
            }
            depth += 1;
            if depth > Config::HIERARCHY_LEVELS_MAX {
                return Ok(depth); // deeper than any bound: refused by the caller
            }
            level = next;
        }
    }

    /// Rewrites one reseller with `change`, compare-and-set, retrying on concurrent writes.
    pub(super) async fn update_reseller(
        &self,
        id: &str,
        change: impl Fn(&Reseller) -> Result<Reseller>,
    ) -> Result<Versioned<Reseller>> {
        self.update_reseller_if(id, |current| change(current).map(Some))
            .await
    }

    /// Like [`Self::update_reseller`], where `change` may answer `None`: nothing to write, the
    /// current record is the answer.
    async fn update_reseller_if(
        &self,
        id: &str,
        change: impl Fn(&Reseller) -> Result<Option<Reseller>>,
    ) -> Result<Versioned<Reseller>> {
        for _ in 0..RETRY_COUNT_MAX {
            let current = self.require_reseller(id).await?;
            let Some(next) = change(&current.value)? else {
                return Ok(current);
            };
            let record = to_record(&next, current.version + 1)?;
            let unique = [INDEX_USER, INDEX_REFID];
            if self
                .put_at(COLLECTION, &record, current.version, &unique)
                .await?
            {
                return Ok(Versioned {
                    value: next,
                    version: record.version,
                });
            }
        }
        Err(Error::Conflict {
            entity: "reseller",
            key: id.to_owned(),
            attempts: RETRY_COUNT_MAX,
        })
    }

    /// What the reseller pays for `base_price` under its tier and the configured rounding.
    pub async fn calculate_tier_cost(&self, id: &str, base_price: Credits) -> Result<Credits> {
        let found = self.require_reseller(id).await?;
        found
            .value
            .tier_cost(base_price, &self.config.pricing.tiers, self.config.rounding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::config::Config;
    use crate::engine::executor::block_on;
    use crate::engine::memory::MemoryStorage;
    use crate::engine::ports::{AppendOutcome, Claim, FixedClock, Guard, NoMailer, StorageError};
    use crate::engine::PAGE_SIZE_MAX;
    use chrono::{TimeZone, Utc};
    use std::cell::Cell;
    use std::rc::Rc;

    type Engine<S> = Ally<S, NoMailer, FixedClock>;

    fn engine<S: Storage>(storage: S) -> Engine<S> {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
            .single()
            .unwrap_or_default();
        Ally::new(Config::default(), storage, NoMailer, FixedClock(at), 7)
    }

    fn run<F: std::future::Future>(future: F) -> F::Output {
        block_on(future, 16).unwrap_or_else(|| panic!("the in-memory port suspended"))
    }

    fn draft(user: u64, tier: Option<&str>) -> ResellerDraft {
        ResellerDraft {
            user_id: Some(UserId::Number(user)),
            company_name: Some(format!("Company {user}")),
            email: Some(format!("ops{user}@example.com")),
            tier: tier.map(str::to_owned),
            metadata: None,
            commission_rate: None,
        }
    }

    #[test]
    fn creates_finds_and_refuses_a_second_profile() {
        let ally = engine(MemoryStorage::new());
        let r =
            run(ally.create_reseller(draft(1, Some("platinum")))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.version, 1);
        let by_id = run(ally.find_reseller(&r.value.id)).ok().flatten();
        assert_eq!(by_id.map(|f| f.value), Some(r.value.clone()));
        let by_user = run(ally.find_reseller_by_user(&UserId::Text("1".into())))
            .ok()
            .flatten();
        assert_eq!(by_user.map(|f| f.value.id), Some(r.value.id.clone()));
        let by_refid = run(ally.find_reseller_by_refid(&r.value.refid))
            .ok()
            .flatten();
        assert_eq!(by_refid.map(|f| f.value.id), Some(r.value.id.clone()));
        assert_eq!(run(ally.find_reseller("rs_missing")).ok().flatten(), None);
        let again = run(ally.create_reseller(draft(1, None)));
        assert_eq!(
            again.err().map(|e| e.code().as_str()),
            Some("ALREADY_EXISTS")
        );
        assert_eq!(ally.storage().count("resellers"), 1);
        let cost =
            run(ally.calculate_tier_cost(&r.value.id, Credits::new(1000).unwrap_or_default()));
        assert_eq!(cost.map(Credits::get), Ok(700));
        let missing = run(ally.calculate_tier_cost("rs_missing", Credits::ZERO));
        assert_eq!(missing.err().map(|e| e.code().as_str()), Some("NOT_FOUND"));
    }

    #[test]
    fn lists_by_scope() {
        let ally = engine(MemoryStorage::new());
        let tiers = ["gold", "platinum", "gold", "standard", "gold"];
        for (user, tier) in tiers.iter().enumerate() {
            run(ally.create_reseller(draft(user as u64 + 1, Some(tier))))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let count = |filter: ResellerFilter| run(ally.list_resellers(&filter)).map(|l| l.len());
        assert_eq!(count(ResellerFilter::default()), Ok(5));
        assert_eq!(
            count(ResellerFilter {
                tier: Some("gold".into()),
                status: None
            }),
            Ok(3)
        );
        assert_eq!(
            count(ResellerFilter {
                tier: None,
                status: Some(ResellerStatus::Active)
            }),
            Ok(5)
        );
        assert_eq!(
            count(ResellerFilter {
                tier: None,
                status: Some(ResellerStatus::Suspended)
            }),
            Ok(0)
        );
        let unknown = count(ResellerFilter {
            tier: Some("diamond".into()),
            status: None,
        });
        assert_eq!(
            unknown.err().map(|e| e.code().as_str()),
            Some("UNKNOWN_TIER")
        );
    }

    #[test]
    fn lists_past_one_page() {
        let ally = engine(MemoryStorage::new());
        for user in 1..=(PAGE_SIZE_MAX as u64 * 2 + 3) {
            run(ally.create_reseller(draft(user, Some("gold")))).unwrap_or_else(|e| panic!("{e}"));
        }
        let all = run(ally.list_resellers(&ResellerFilter::default())).map(|l| l.len());
        assert_eq!(all, Ok(PAGE_SIZE_MAX as usize * 2 + 3));
        let gold = run(ally.list_resellers(&ResellerFilter {
            tier: Some("gold".into()),
            status: None,
        }))
        .map(|l| l.len());
        assert_eq!(gold, Ok(PAGE_SIZE_MAX as usize * 2 + 3));
    }

    #[test]
    fn metadata_updates_bump_the_version() {
        let ally = engine(MemoryStorage::new());
        let r = run(ally.create_reseller(draft(1, None))).unwrap_or_else(|e| panic!("{e}"));
        let held = run(ally.update_reseller_metadata(
            &r.value.id,
            "hold_provisioning",
            Some(Value::Bool(true)),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(held.version, 2);
        assert_eq!(
            held.value.metadata.get("hold_provisioning"),
            Some(&Value::Bool(true))
        );
        let stored = run(ally.find_reseller(&r.value.id))
            .ok()
            .flatten()
            .map(|f| f.value);
        assert_eq!(stored, Some(held.value));
    }

    /// A storage that fails or races on chosen calls, to check what the engine does with each.
    struct Flaky {
        inner: MemoryStorage,
        calls: Cell<u32>,
        fail_at: u32,
        stale_puts: Cell<u32>,
    }

    impl Storage for Flaky {
        async fn get(&self, c: &str, id: &str) -> Result<Option<StoredRecord>, StorageError> {
            self.tick()?;
            self.inner.get(c, id).await
        }
        async fn find(&self, c: &str, q: Query<'_>) -> Result<Vec<StoredRecord>, StorageError> {
            self.tick()?;
            self.inner.find(c, q).await
        }
        async fn put(
            &self,
            c: &str,
            r: &StoredRecord,
            v: u64,
            u: &[&str],
        ) -> Result<WriteOutcome, StorageError> {
            self.tick()?;
            if self.stale_puts.get() > 0 {
                self.stale_puts.set(self.stale_puts.get() - 1);
                return Ok(WriteOutcome::Stale);
            }
            self.inner.put(c, r, v, u).await
        }
        async fn append(
            &self,
            s: &str,
            n: u64,
            e: &[String],
            claims: &[Claim<'_>],
            guard: Option<Guard<'_>>,
            held: bool,
        ) -> Result<AppendOutcome, StorageError> {
            self.tick()?;
            self.inner.append(s, n, e, claims, guard, held).await
        }
        async fn read(&self, s: &str, f: u64, l: u32) -> Result<Vec<String>, StorageError> {
            self.tick()?;
            self.inner.read(s, f, l).await
        }
        async fn find_claim(&self, s: &str, key: &str) -> Result<Option<u64>, StorageError> {
            self.tick()?;
            self.inner.find_claim(s, key).await
        }
    }

    impl Flaky {
        fn tick(&self) -> Result<(), StorageError> {
            self.calls.set(self.calls.get() + 1);
            if self.calls.get() == self.fail_at {
                return Err(StorageError {
                    reason: "disk on fire".into(),
                });
            }
            Ok(())
        }
    }

    #[test]
    fn storage_failures_are_reported_and_leave_nothing_behind() {
        // Call 1 creates the reseller, call 2 opens its wallet (a failure there is repaired by
        // the first credit operation, so it is not reported), calls 3 and 4 update it.
        for fail_at in [1, 3, 4] {
            let flaky = Rc::new(Flaky {
                inner: MemoryStorage::new(),
                calls: Cell::new(0),
                fail_at,
                stale_puts: Cell::new(0),
            });
            let ally = engine(Rc::clone(&flaky));
            let created = run(ally.create_reseller(draft(1, None)));
            let updated = created.as_ref().ok().map(|r| {
                run(ally.update_reseller_metadata(&r.value.id, "k", Some(Value::from(1))))
            });
            match fail_at {
                1 => {
                    assert_eq!(
                        created.err().map(|e| e.to_string()),
                        Some("storage put failed: disk on fire".into())
                    );
                    assert_eq!(flaky.inner.count("resellers"), 0);
                }
                _ => {
                    let err = updated.and_then(Result::err).map(|e| e.code().as_str());
                    assert_eq!(err, Some("STORAGE_FAILED"), "fail_at {fail_at}");
                    let stored = run(flaky.inner.find(
                        "resellers",
                        Query {
                            index: None,
                            after: None,
                            limit: 10,
                        },
                    ))
                    .unwrap_or_default();
                    assert_eq!(stored.len(), 1);
                    assert_eq!(stored[0].version, 1, "a failed update must not write");
                }
            }
        }
    }

    #[test]
    fn concurrent_writers_are_retried_then_refused() {
        let flaky = Rc::new(Flaky {
            inner: MemoryStorage::new(),
            calls: Cell::new(0),
            fail_at: 0,
            stale_puts: Cell::new(0),
        });
        let ally = engine(Rc::clone(&flaky));
        let r = run(ally.create_reseller(draft(1, None))).unwrap_or_else(|e| panic!("{e}"));
        flaky.stale_puts.set(3);
        let ok = run(ally.update_reseller_metadata(&r.value.id, "k", Some(Value::from(1))));
        assert_eq!(ok.map(|v| v.version), Ok(2));
        flaky.stale_puts.set(RETRY_COUNT_MAX);
        let gave_up = run(ally.update_reseller_metadata(&r.value.id, "k", Some(Value::from(2))));
        assert_eq!(gave_up.err().map(|e| e.code().as_str()), Some("CONFLICT"));
    }

    #[test]
    fn moves_at_once_never_build_a_cycle_or_too_long_a_chain() {
        use crate::engine::test_support::{run_all, Op, Yielding};
        let ally = engine(Yielding::default());
        let ids: Vec<String> = (1..=4)
            .map(|u| {
                block_on(ally.create_reseller(draft(u, None)), 1_000)
                    .and_then(Result::ok)
                    .unwrap_or_else(|| panic!("created"))
                    .value
                    .id
            })
            .collect();
        let parent_of = |id: &str| {
            block_on(ally.require_reseller(id), 1_000)
                .and_then(Result::ok)
                .and_then(|r| r.value.parent_id)
        };
        // Each move alone is allowed; at once they would make a cycle (0 under 1, 1 under 0).
        let moves: Vec<Op<'_, Versioned<Reseller>>> = vec![
            Box::pin(ally.set_parent(&ids[0], Some(&ids[1]))),
            Box::pin(ally.set_parent(&ids[1], Some(&ids[0]))),
        ];
        let outcomes = run_all(moves);
        let codes: Vec<Option<&str>> = outcomes
            .iter()
            .map(|o| o.as_ref().err().map(|e| e.code().as_str()))
            .collect();
        assert_eq!(codes, vec![None, Some("INVALID_INPUT")]);
        assert_eq!(
            (parent_of(&ids[0]), parent_of(&ids[1])),
            (Some(ids[1].clone()), None)
        );
        // Three levels allowed: 2 under 0 (0 is under 1) and 3 over 1 at once would be four.
        let moves: Vec<Op<'_, Versioned<Reseller>>> = vec![
            Box::pin(ally.set_parent(&ids[2], Some(&ids[0]))),
            Box::pin(ally.set_parent(&ids[1], Some(&ids[3]))),
        ];
        let codes: Vec<Option<&str>> = run_all(moves)
            .iter()
            .map(|o| o.as_ref().err().map(|e| e.code().as_str()))
            .collect();
        assert_eq!(codes, vec![None, Some("INVALID_INPUT")]);
        assert_eq!(parent_of(&ids[1]), None);

        // A move claimed and then given up (its future dropped) is finished by the next one.
        {
            let mut dropped = Box::pin(ally.set_parent(&ids[3], Some(&ids[1])));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut claimed = false;
            for _ in 0..100 {
                assert!(std::future::Future::poll(dropped.as_mut(), &mut cx).is_pending());
                let edit = block_on(ally.hierarchy_edit(), 1_000).and_then(Result::ok);
                if edit.is_some_and(|(e, _)| e.is_some()) {
                    claimed = true;
                    break;
                }
            }
            assert!(claimed, "the move was claimed");
        }
        assert_eq!(parent_of(&ids[3]), None);
        let next = block_on(ally.set_parent(&ids[2], None), 1_000).and_then(Result::ok);
        assert_eq!(next.and_then(|r| r.value.parent_id), None);
        assert_eq!(parent_of(&ids[3]), Some(ids[1].clone()));
        // A cycle stored by an older version (written here past the checks) is broken by
        // moving one of its members to the top.
        let cycle = block_on(
            ally.update_reseller(&ids[1], |r| {
                Ok(r.with_parent(Some(ids[3].clone()), r.updated_at))
            }),
            1_000,
        );
        assert!(cycle.is_some_and(|r| r.is_ok()));
        let repaired = block_on(ally.set_parent(&ids[3], None), 1_000).and_then(|r| r.err());
        assert_eq!(repaired.map(|e| e.to_string()), None);
        assert_eq!(
            (parent_of(&ids[3]), parent_of(&ids[1])),
            (None, Some(ids[3].clone()))
        );
        // A move keeps the reseller's unique user and refid.
        let again = block_on(ally.create_reseller(draft(4, None)), 1_000)
            .and_then(|r| r.err())
            .map(|e| e.code().as_str());
        assert_eq!(again, Some("ALREADY_EXISTS"));
    }

    #[test]
    fn the_hierarchy_refuses_cycles_and_chains_past_the_bound() {
        let ally = engine(MemoryStorage::new());
        let ids: Vec<String> = (1..=4)
            .map(|u| {
                run(ally.create_reseller(draft(u, None)))
                    .unwrap_or_else(|e| panic!("{e}"))
                    .value
                    .id
            })
            .collect();
        let set = |child: usize, parent: Option<usize>| {
            run(ally.set_parent(&ids[child], parent.map(|p| ids[p].as_str())))
        };
        assert!(set(1, Some(0)).is_ok());
        assert!(set(2, Some(1)).is_ok());
        let code = |r: Result<Versioned<Reseller>>| r.err().map(|e| e.code().as_str());
        assert_eq!(code(set(0, Some(2))), Some("INVALID_INPUT"), "a cycle");
        assert_eq!(
            code(set(3, Some(2))),
            Some("INVALID_INPUT"),
            "a fourth level"
        );
        assert_eq!(
            code(set(0, Some(3))),
            Some("INVALID_INPUT"),
            "the chain pushed down"
        );
        let children = run(ally.children(&ids[0])).unwrap_or_default();
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].value.id, ids[1]);
        let rate = Rate::from_units(1500);
        let updated =
            run(ally.set_commission_rate(&ids[2], rate)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((updated.value.commission_rate, updated.version), (rate, 3));
        // A record written before the hierarchy fields existed still reads.
        let mut json: Value = serde_json::to_value(&updated.value).unwrap_or_default();
        if let Value::Object(map) = &mut json {
            map.remove("commissionRate");
            map.remove("parentId");
        }
        let old = Reseller::from_json(json, "reseller").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((old.commission_rate, old.parent_id), (None, None));
    }
}
