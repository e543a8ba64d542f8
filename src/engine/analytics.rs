//! Analytics over the stored network: credit trends from the wallets' replayed day totals, the
//! tier snapshot, top resellers, credits outstanding, one reseller's stats, and the client
//! figures (status breakdown, growth, standalone vs resold, signup trends).
//!
//! Every figure can be scoped to one reseller (`forReseller` in the bindings): its own wallet and
//! its own clients. Periods are whole UTC days ([`Days`]).

use crate::domain::analytics::{self, day_of, Days, Interval, Volume};
use crate::domain::client::{Client, ClientStatus};
use crate::domain::money::Credits;
use crate::domain::reseller::Reseller;
use crate::domain::{Error, Result};

use super::ports::{Clock, Mailer, Storage};
use super::{clients, resellers, Ally};

/// The most resellers `topResellers` lists.
pub const TOP_LIMIT_MAX: u32 = 1_000;

/// One row of `topResellers`.
#[derive(Clone, Debug, PartialEq)]
pub struct TopReseller {
    pub reseller: Reseller,
    /// Clients it signed up in the period.
    pub acquisitions: u64,
    /// Credits it bought (top-ups) in the period.
    pub credit_volume: i128,
    /// Credits it spent (provisions) in the period.
    pub provisioned: i128,
    pub balance: Credits,
}

/// What `resellerStats` says of one reseller.
#[derive(Clone, Debug, PartialEq)]
pub struct ResellerStats {
    pub reseller: Reseller,
    pub balance: Credits,
    /// Its tier's discount on base prices.
    pub discount: crate::domain::money::Rate,
    /// Over its whole history.
    pub volume: Volume,
    /// Its clients by status, in [`ClientStatus::ALL`] order.
    pub clients: [u64; 4],
    /// The last day its wallet moved, as a day number.
    pub last_activity_day: Option<i64>,
}

/// Standalone clients (of the business) against resold ones (of a reseller).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segmentation {
    pub standalone: u64,
    pub resold: u64,
    /// Hundredths of a percent, summing to 10 000 unless both are 0.
    pub standalone_share: u32,
    pub resold_share: u32,
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// The resellers a figure covers: every one, or the one of the scope (`NOT_FOUND` if absent).
    async fn scoped_resellers(&self, scope: Option<&str>) -> Result<Vec<Reseller>> {
        match scope {
            Some(id) => Ok(vec![self.require_reseller(id).await?.value]),
            None => {
                let all = self
                    .find_all(resellers::COLLECTION, None, resellers::from_record)
                    .await?;
                Ok(all.into_iter().map(|r| r.value).collect())
            }
        }
    }

    /// The clients a figure covers: every one, or the scope reseller's.
    async fn scoped_clients(&self, scope: Option<&str>) -> Result<Vec<Client>> {
        let found = match scope {
            Some(id) => {
                self.require_reseller(id).await?;
                self.clients_of_reseller(id).await?
            }
            None => {
                self.find_all(clients::COLLECTION, None, clients::from_record)
                    .await?
            }
        };
        Ok(found.into_iter().map(|c| c.value).collect())
    }

    /// Credits distributed (top-ups) per bucket of `days`, every bucket present.
    pub async fn credit_trends(
        &self,
        scope: Option<&str>,
        days: Days,
        interval: Interval,
    ) -> Result<Vec<(String, i128)>> {
        analytics::bucket_count(days, interval)?;
        let mut credited: Vec<(i64, i128)> = Vec::new();
        for reseller in self.scoped_resellers(scope).await? {
            self.with_wallet(&reseller, |_, volumes| {
                credited.extend(volumes.within(days).map(|(day, v)| (day, v.credited)));
            })
            .await?;
        }
        analytics::trend(credited, days, interval)
    }

    /// Resellers per configured tier (in the tier table's order), counting those registered in
    /// `days`.
    pub async fn tier_snapshot(
        &self,
        scope: Option<&str>,
        days: Days,
    ) -> Result<Vec<(String, u64)>> {
        let mut counts: Vec<(String, u64)> = self
            .config
            .pricing
            .tiers
            .iter()
            .map(|(name, _)| (name.as_str().to_owned(), 0))
            .collect();
        for reseller in self.scoped_resellers(scope).await? {
            if !days.contains(day_of(reseller.created_at.timestamp_millis())) {
                continue;
            }
            match counts.iter_mut().find(|(name, _)| *name == reseller.tier) {
                Some((_, count)) => *count += 1,
                // A tier since removed from the configuration still counts.
                None => counts.push((reseller.tier.clone(), 1)),
            }
        }
        Ok(counts)
    }

    /// The resellers that bought the most credits in `days`, then those that signed up the most
    /// clients; at most `limit`.
    pub async fn top_resellers(
        &self,
        scope: Option<&str>,
        limit: u32,
        days: Days,
    ) -> Result<Vec<TopReseller>> {
        if limit == 0 || limit > TOP_LIMIT_MAX {
            return Err(Error::invalid(
                "limit",
                format!("expected a whole number from 1 to {TOP_LIMIT_MAX}, got {limit}"),
            ));
        }
        let mut acquisitions: std::collections::HashMap<String, u64> = Default::default();
        for client in self.scoped_clients(scope).await? {
            if let Some(owner) = &client.reseller_id {
                if days.contains(day_of(client.created_at.timestamp_millis())) {
                    *acquisitions.entry(owner.clone()).or_default() += 1;
                }
            }
        }
        let mut rows = Vec::new();
        for reseller in self.scoped_resellers(scope).await? {
            let (volume, balance) = self
                .with_wallet(&reseller, |wallet, volumes| {
                    (volumes.total(days), wallet.credits())
                })
                .await?
                .unwrap_or_default();
            rows.push(TopReseller {
                acquisitions: acquisitions.get(&reseller.id).copied().unwrap_or(0),
                credit_volume: volume.credited,
                provisioned: volume.debited,
                balance,
                reseller,
            });
        }
        rows.sort_by(|a, b| {
            (b.credit_volume, b.acquisitions)
                .cmp(&(a.credit_volume, a.acquisitions))
                .then_with(|| a.reseller.id.cmp(&b.reseller.id))
        });
        rows.truncate(limit as usize);
        Ok(rows)
    }

    /// The credits held in wallets: what the business owes its network in services.
    pub async fn total_credits_distributed(&self, scope: Option<&str>) -> Result<i128> {
        let mut total = 0i128;
        for reseller in self.scoped_resellers(scope).await? {
            let balance = self
                .with_wallet(&reseller, |wallet, _| wallet.credits())
                .await?;
            total = total
                .checked_add(i128::from(balance.unwrap_or(Credits::ZERO).get()))
                .ok_or_else(|| Error::overflow("totalCreditsDistributed"))?;
        }
        Ok(total)
    }

    /// One reseller's balance, tier, wallet volume and clients.
    pub async fn reseller_stats(&self, id: &str) -> Result<ResellerStats> {
        let reseller = self.require_reseller(id).await?.value;
        let discount = self.config.pricing.tiers.get(&reseller.tier)?.1.discount;
        let (balance, volume, last_activity_day) = self
            .with_wallet(&reseller, |wallet, volumes| {
                (
                    wallet.credits(),
                    volumes.total(Days::ALL),
                    volumes.last_day(),
                )
            })
            .await?
            .unwrap_or_default();
        let mut clients = [0u64; 4];
        for client in self.clients_of_reseller(id).await? {
            clients[status_slot(client.value.status)] += 1;
        }
        Ok(ResellerStats {
            reseller,
            balance,
            discount,
            volume,
            clients,
            last_activity_day,
        })
    }

    /// Clients by status (in [`ClientStatus::ALL`] order) among those created in `days`.
    pub async fn client_status_breakdown(
        &self,
        scope: Option<&str>,
        days: Days,
    ) -> Result<[u64; 4]> {
        let mut counts = [0u64; 4];
        for client in self.scoped_clients(scope).await? {
            if days.contains(day_of(client.created_at.timestamp_millis())) {
                counts[status_slot(client.status)] += 1;
            }
        }
        Ok(counts)
    }

    /// How many clients were created in `days`.
    pub async fn client_growth(&self, scope: Option<&str>, days: Days) -> Result<u64> {
        Ok(self
            .client_status_breakdown(scope, days)
            .await?
            .iter()
            .sum())
    }

    /// Standalone against resold clients created in `days`.
    pub async fn client_segmentation(
        &self,
        scope: Option<&str>,
        days: Days,
    ) -> Result<Segmentation> {
        let mut segmentation = Segmentation::default();
        for client in self.scoped_clients(scope).await? {
            if days.contains(day_of(client.created_at.timestamp_millis())) {
                if client.reseller_id.is_some() {
                    segmentation.resold += 1;
                } else {
                    segmentation.standalone += 1;
                }
            }
        }
        let shares = analytics::percentages(&[segmentation.standalone, segmentation.resold]);
        segmentation.standalone_share = shares[0];
        segmentation.resold_share = shares[1];
        Ok(segmentation)
    }

    /// Clients created per bucket of `days`, every bucket present.
    pub async fn signup_trends(
        &self,
        scope: Option<&str>,
        days: Days,
        interval: Interval,
    ) -> Result<Vec<(String, i128)>> {
        analytics::bucket_count(days, interval)?;
        let signups: Vec<(i64, i128)> = self
            .scoped_clients(scope)
            .await?
            .iter()
            .map(|c| (day_of(c.created_at.timestamp_millis()), 1))
            .collect();
        analytics::trend(signups, days, interval)
    }
}

fn status_slot(status: ClientStatus) -> usize {
    ClientStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or(0)
}
