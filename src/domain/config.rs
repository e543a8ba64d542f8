//! Engine configuration, with the reference defaults.

use super::commission::Plan;
use super::error::{Error, Result};
use super::money::Credits;
use super::quote::PricingContext;
use super::rounding::Rounding;
use super::tier::TierName;
use super::workflow::{Checklist, Lifecycle};

/// Everything an `Ally` instance is configured with. Built valid by [`Config::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Tier of a reseller created without one (`defaultTier`, default `standard`).
    pub default_tier: TierName,
    /// Tiers, currency and `creditConversionRate` (default 100 credits = 1.00 USD).
    pub pricing: PricingContext,
    /// Rounding of tier costs and money conversions (default `halfUp`).
    pub rounding: Rounding,
    /// Create a wallet with each reseller (`autoProvisionWallet`, default true).
    pub auto_provision_wallet: bool,
    /// Balance below which a reseller is low on credit (`lowCreditThreshold`, default 500).
    pub low_credit_threshold: Credits,
    /// Where the reseller dashboard lives (`urls.dashboard`, default `partner/dashboard`).
    pub dashboard_url: String,
    /// The longest chain of resellers, the top included (`hierarchyLevelsMax`, default 3: a
    /// super reseller, a sub-reseller, and one more level).
    pub hierarchy_levels_max: usize,
    /// What client refids start with (`clientRefidPrefix`, default `CL-`).
    pub client_refid_prefix: String,
    /// The plan the engine's commission runs, payouts and reconciliation use (`commissionPlan`,
    /// default [`Plan::reference`]: the reseller's own rate and a 5 % override for its parent).
    pub commission_plan: Plan,
    /// The resellers' onboarding checklist (`onboarding`, default [`Checklist::reference`]).
    pub onboarding: Checklist,
    /// The clients' lifecycle stages (`lifecycle`, default [`Lifecycle::reference`]).
    pub lifecycle: Lifecycle,
}

impl Config {
    pub const URL_LEN_MAX: usize = 2_048;
    pub const HIERARCHY_LEVELS_DEFAULT: usize = 3;
    pub const CLIENT_REFID_PREFIX_DEFAULT: &'static str = "CL-";
    /// The most levels `hierarchyLevelsMax` may allow (commission overrides go at most this deep).
    pub const HIERARCHY_LEVELS_MAX: usize = 9;

    /// Checks the parts against each other: the default tier must be in the tier table, the
    /// dashboard URL must be printable.
    pub fn new(
        default_tier: TierName,
        pricing: PricingContext,
        rounding: Rounding,
        auto_provision_wallet: bool,
        low_credit_threshold: Credits,
        dashboard_url: String,
    ) -> Result<Self> {
        if pricing.tiers.get(default_tier.as_str()).is_err() {
            return Err(Error::InvalidConfig {
                key: "defaultTier".to_owned(),
                reason: format!("tier \"{default_tier}\" is not in the tier table"),
            });
        }
        let url_ok = !dashboard_url.trim().is_empty()
            && dashboard_url.len() <= Self::URL_LEN_MAX
            && !dashboard_url.chars().any(char::is_control);
        if !url_ok {
            return Err(Error::InvalidConfig {
                key: "urls.dashboard".to_owned(),
                reason: format!(
                    "expected a non-blank URL or path of at most {} bytes without control characters",
                    Self::URL_LEN_MAX
                ),
            });
        }
        Ok(Self {
            default_tier,
            pricing,
            rounding,
            auto_provision_wallet,
            low_credit_threshold,
            dashboard_url,
            hierarchy_levels_max: Self::HIERARCHY_LEVELS_DEFAULT,
            client_refid_prefix: Self::CLIENT_REFID_PREFIX_DEFAULT.to_owned(),
            commission_plan: Plan::reference(),
            onboarding: Checklist::reference(),
            lifecycle: Lifecycle::reference(),
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_tier: TierName::from_literal("standard"),
            pricing: PricingContext::default(),
            rounding: Rounding::HalfUp,
            auto_provision_wallet: true,
            low_credit_threshold: Credits::new(500).unwrap_or(Credits::ZERO),
            dashboard_url: "partner/dashboard".to_owned(),
            hierarchy_levels_max: Self::HIERARCHY_LEVELS_DEFAULT,
            client_refid_prefix: Self::CLIENT_REFID_PREFIX_DEFAULT.to_owned(),
            commission_plan: Plan::reference(),
            onboarding: Checklist::reference(),
            lifecycle: Lifecycle::reference(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_reference() {
        let config = Config::default();
        assert_eq!(config.default_tier.as_str(), "standard");
        assert_eq!(config.pricing.conversion.get(), 100);
        assert_eq!(config.low_credit_threshold.get(), 500);
        assert_eq!(config.dashboard_url, "partner/dashboard");
        assert!(config.auto_provision_wallet);
        assert_eq!(config.pricing.currency.code(), "USD");
    }

    #[test]
    fn default_tier_must_exist() {
        let base = Config::default();
        let diamond = TierName::parse("diamond", "t").unwrap_or_else(|e| panic!("{e}"));
        let err = Config::new(
            diamond,
            base.pricing.clone(),
            base.rounding,
            true,
            base.low_credit_threshold,
            base.dashboard_url.clone(),
        );
        assert_eq!(
            err.err().map(|e| e.to_string()),
            Some("config defaultTier: tier \"diamond\" is not in the tier table".to_owned())
        );
        let err = Config::new(
            base.default_tier.clone(),
            base.pricing,
            base.rounding,
            true,
            base.low_credit_threshold,
            " ".into(),
        );
        assert_eq!(err.err().map(|e| e.code().as_str()), Some("INVALID_CONFIG"));
    }
}
