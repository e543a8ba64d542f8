//! The shapes of values that cross the boundary, as serde structs. `tsify` turns each into the
//! TypeScript declaration the package ships, so the types cannot drift from what is parsed.

// Input shapes are declaration-only: they exist so that tsify writes their TypeScript, while
// `fields.rs` readers parse the same shapes with full error paths. The JS test suite exercises
// every declared field, and `tsc --strict` checks a consumer against these declarations.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use tsify::Tsify;

use crate::domain::rounding::Rounding;

/// Declaration-only stand-in for whole credits (`number | bigint` in TypeScript).
#[derive(Clone, Copy, Debug)]
pub struct CreditsField;

/// Declaration-only stand-in for a decimal (`string | number` in TypeScript).
#[derive(Clone, Debug)]
pub struct DecimalField;

/// A rounding mode by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub enum RoundingName {
    HalfUp,
    HalfEven,
    Up,
    Down,
}

impl From<RoundingName> for Rounding {
    fn from(name: RoundingName) -> Self {
        match name {
            RoundingName::HalfUp => Self::HalfUp,
            RoundingName::HalfEven => Self::HalfEven,
            RoundingName::Up => Self::Up,
            RoundingName::Down => Self::Down,
        }
    }
}

impl From<Rounding> for RoundingName {
    fn from(mode: Rounding) -> Self {
        match mode {
            Rounding::HalfUp => Self::HalfUp,
            Rounding::HalfEven => Self::HalfEven,
            Rounding::Up => Self::Up,
            Rounding::Down => Self::Down,
        }
    }
}

/// A tier's terms.
#[derive(Clone, Debug, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierDefinition {
    /// Share taken off the base price, in [0, 1] with at most 4 decimals: `"0.15"` or `0.15`.
    #[tsify(type = "string | number")]
    pub discount: DecimalField,
}

/// Options of `tierCost` and `tierCostBatch`.
#[derive(Clone, Debug, Default, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierCostOptions {
    /// Default `"halfUp"`.
    #[tsify(optional)]
    pub rounding: Option<RoundingName>,
    /// Tiers laid over the reference table (standard 0, gold 0.15, platinum 0.30).
    #[tsify(optional, type = "Record<string, TierDefinition>")]
    pub tiers: Option<BTreeMap<String, TierDefinition>>,
}

/// A quantity band of a `volume` or `graduated` product.
#[derive(Clone, Debug, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandInput {
    /// Last quantity in the band (inclusive); `null` or absent for the open-ended last band.
    #[tsify(optional, type = "number | null")]
    pub up_to: Option<CreditsField>,
    /// Credits per unit in this band.
    #[tsify(type = "number | bigint")]
    pub unit_price: CreditsField,
    /// Credits billed once with the band: in `volume` pricing the band the quantity reaches (0
    /// units reach none), in `graduated` pricing every band units fall into, and the first band
    /// even for 0 units. Default 0.
    #[tsify(optional, type = "number | bigint")]
    pub flat_fee: Option<CreditsField>,
}

/// How a product's price follows from the quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub enum PricingModelName {
    PerUnit,
    Volume,
    Graduated,
    Package,
}

/// A catalog product.
#[derive(Clone, Debug, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductInput {
    pub sku: String,
    pub name: String,
    /// Credits per unit, for `perUnit` pricing (the default).
    #[tsify(optional, type = "number | bigint")]
    pub base_price: Option<CreditsField>,
    /// Default `"perUnit"`.
    #[tsify(optional)]
    pub pricing: Option<PricingModelName>,
    /// For `volume` and `graduated` pricing.
    #[tsify(optional)]
    pub bands: Option<Vec<BandInput>>,
    /// For `package` pricing: units per block, 1 to 1 000 000 000; a started block is billed whole.
    #[tsify(optional, type = "number | bigint")]
    pub package_size: Option<CreditsField>,
    /// For `package` pricing: credits per block.
    #[tsify(optional, type = "number | bigint")]
    pub package_price: Option<CreditsField>,
    /// For `package` pricing: units priced free before the first block, at most 1 000 000 000.
    /// Default 0.
    #[tsify(optional, type = "number | bigint")]
    pub free_units: Option<CreditsField>,
    /// Tiers allowed to sell the product; absent: every tier.
    #[tsify(optional)]
    pub tiers: Option<Vec<String>>,
}

/// One requested line of a quote.
#[derive(Clone, Debug, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuoteLineInput {
    pub sku: String,
    #[tsify(type = "number | bigint")]
    pub quantity: CreditsField,
}

/// A cart to price.
#[derive(Clone, Debug, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuoteRequestInput {
    pub tier: String,
    pub lines: Vec<QuoteLineInput>,
    /// Rounding of each line's discounted total and of the money total; default `"halfUp"`.
    #[tsify(optional)]
    pub rounding: Option<RoundingName>,
}

/// The request a quote was priced for, echoed so that it can be verified later.
#[derive(Clone, Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct QuoteRequestEcho {
    pub tier: String,
    pub lines: Vec<QuoteLineEcho>,
    pub rounding: RoundingName,
}

#[derive(Clone, Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct QuoteLineEcho {
    pub sku: String,
    pub quantity: u64,
}

/// The units of a line one band priced.
#[derive(Clone, Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct BandUseOutput {
    /// Index of the band in the product's bands; `null` for per-unit pricing.
    pub band: Option<usize>,
    pub up_to: Option<u64>,
    pub quantity: u64,
    pub unit_price: u64,
    /// The band's flat fee, present when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub flat_fee: Option<u64>,
    /// `quantity × unitPrice + flatFee`.
    pub amount: u64,
}

/// A priced line.
#[derive(Clone, Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct QuoteLineOutput {
    pub sku: String,
    pub name: String,
    pub quantity: u64,
    pub pricing: PricingModelName,
    /// Unit price of the last unit on the line, in credits; for `package` pricing, a block's.
    pub unit_price: u64,
    /// The bands that priced the line (`perUnit`: one, `band: null`; `package`: none).
    pub bands: Vec<BandUseOutput>,
    /// For `package` pricing: the blocks billed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub packages: Option<u64>,
    /// For `package` pricing: the units of the line priced free (at most the product's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub free_units: Option<u64>,
    /// Before the tier discount, in credits.
    pub subtotal: u64,
    /// The tier's discount, e.g. `"0.3000"`.
    pub discount_rate: String,
    pub discount: u64,
    /// What the reseller pays for the line, in credits.
    pub total: u64,
}

/// A priced cart.
#[derive(Clone, Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    pub request: QuoteRequestEcho,
    pub tier: String,
    pub discount_rate: String,
    pub lines: Vec<QuoteLineOutput>,
    pub subtotal: u64,
    pub discount: u64,
    /// Credits to pay.
    pub total: u64,
    /// `total` in money at the currency's scale, e.g. `"25.76"`.
    pub total_money: String,
    pub currency: String,
    /// SHA-256 (hex) of the catalog the quote was priced against.
    pub catalog_digest: String,
    /// SHA-256 (hex) over catalog, request and result.
    pub fingerprint: String,
}

/// What `verifyQuote` found.
#[derive(Clone, Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct QuoteVerification {
    /// True when re-pricing the quote's request gives exactly the quote received.
    pub valid: bool,
    /// The fingerprint the request re-prices to.
    pub fingerprint: String,
    /// Paths of the fields that differ from the re-priced quote, e.g. `lines[0].total`.
    pub mismatches: Vec<String>,
}

#[cfg(feature = "engine")]
/// A currency by ISO code, with its scale when the code is not a common one.
#[derive(Clone, Debug, Tsify)]
#[serde(untagged)]
pub enum CurrencyInput {
    Code(String),
    Detailed(CurrencyDetail),
}

#[cfg(feature = "engine")]
#[derive(Clone, Debug, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CurrencyDetail {
    pub code: String,
    /// Fraction digits of the minor unit, 0 to 6.
    #[tsify(optional)]
    pub scale: Option<u32>,
}

#[cfg(feature = "engine")]
#[derive(Clone, Debug, Default, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlsConfig {
    /// Default `"partner/dashboard"`.
    #[tsify(optional)]
    pub dashboard: Option<String>,
}

#[cfg(feature = "engine")]
/// Engine configuration; every key optional, defaults from the reference.
#[derive(Clone, Debug, Default, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllyConfig {
    /// Default `"standard"`.
    #[tsify(optional)]
    pub default_tier: Option<String>,
    /// Credits per one unit of the currency; default 100 (100 credits = 1.00).
    #[tsify(optional, type = "number")]
    pub credit_conversion_rate: Option<CreditsField>,
    /// Default true.
    #[tsify(optional)]
    pub auto_provision_wallet: Option<bool>,
    /// Default 500 credits.
    #[tsify(optional, type = "number")]
    pub low_credit_threshold: Option<CreditsField>,
    #[tsify(optional)]
    pub urls: Option<UrlsConfig>,
    /// Laid over the reference tiers.
    #[tsify(optional, type = "Record<string, TierDefinition>")]
    pub tiers: Option<BTreeMap<String, TierDefinition>>,
    /// Default `"USD"` (2 decimals).
    #[tsify(optional)]
    pub currency: Option<CurrencyInput>,
    /// Rounding of tier costs and money conversions; default `"halfUp"`.
    #[tsify(optional)]
    pub rounding: Option<RoundingName>,
    /// The longest chain of resellers, the top included: 1 to 9, default 3.
    #[tsify(optional, type = "number")]
    pub hierarchy_levels_max: Option<CreditsField>,
    /// What client refids start with: 1 to 8 of A-Z, 0-9, - and _; default `"CL-"`.
    #[tsify(optional)]
    pub client_refid_prefix: Option<String>,
    /// The plan of the engine's commission runs, payouts and reconciliation; default the
    /// reference plan (the reseller's own rate, 5 % override for its parent).
    #[tsify(optional, type = "CommissionPlan")]
    pub commission_plan: Option<serde_json::Value>,
    /// The resellers' onboarding checklist; default the 11-task partner checklist.
    #[tsify(optional, type = "OnboardingTaskConfig[]")]
    pub onboarding: Option<serde_json::Value>,
    /// The clients' lifecycle stages (they start at the first); default the 12-stage journey.
    #[tsify(optional, type = "LifecycleStageConfig[]")]
    pub lifecycle: Option<serde_json::Value>,
}

#[cfg(feature = "engine")]
/// Options of `suspend` and `deactivate`.
#[derive(Clone, Debug, Default, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusOptions {
    /// Why, as the account manager should read it (at most 512 bytes); carried by
    /// `RESELLER_INACTIVE` and the record's `statusReason`.
    #[tsify(optional)]
    pub reason: Option<String>,
}

#[cfg(feature = "engine")]
/// Scopes for `list`.
#[derive(Clone, Debug, Default, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResellerListFilter {
    #[tsify(optional)]
    pub tier: Option<String>,
    #[tsify(optional)]
    pub status: Option<ResellerStatusName>,
}

#[cfg(feature = "engine")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub enum ResellerStatusName {
    Active,
    Suspended,
    Inactive,
}

#[cfg(feature = "engine")]
/// A reseller profile. Plain JSON; pass it (or its `id`) back to any method that takes a reseller.
#[derive(Clone, Debug, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Reseller {
    pub id: String,
    /// Public, non-sequential reference, e.g. `"RS-7K3M9Q2XAB"`.
    pub refid: String,
    #[tsify(type = "number | string")]
    pub user_id: serde_json::Value,
    pub company_name: String,
    pub email: Option<String>,
    pub tier: String,
    pub status: ResellerStatusName,
    /// Why it was suspended or deactivated, or null.
    pub status_reason: Option<String>,
    #[tsify(type = "Record<string, JsonValue>")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Its own commission rate (`"0.1500"`), or null when not set.
    pub commission_rate: Option<String>,
    /// The reseller above it, or null at the top.
    pub parent_id: Option<String>,
    /// ISO-8601, UTC.
    pub created_at: String,
    pub updated_at: String,
    /// Storage version; increases with every write.
    pub version: u64,
}

/// Handles for optional parameters: an `Option<T>` of an imported type keeps the parameter
/// optional in the declarations (`options?: TierCostOptions | null`), which
/// `unchecked_param_type` on a bare `JsValue` cannot. The values are unchecked references; the
/// readers check them like any other input.
pub mod optional {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(typescript_type = "TierCostOptions")]
        pub type TierCostOptionsArg;
    }

    #[cfg(feature = "engine")]
    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(typescript_type = "AllyOptions")]
        pub type AllyOptionsArg;
        #[wasm_bindgen(typescript_type = "Reseller | string")]
        pub type ResellerArg;
        #[wasm_bindgen(typescript_type = "ResellerListFilter")]
        pub type ResellerListFilterArg;
        #[wasm_bindgen(typescript_type = "JsonValue")]
        pub type JsonValueArg;
        #[wasm_bindgen(typescript_type = "AddCreditsOptions")]
        pub type AddCreditsOptionsArg;
        #[wasm_bindgen(typescript_type = "ProvisionOptions")]
        pub type ProvisionOptionsArg;
        #[wasm_bindgen(typescript_type = "TransactionsOptions")]
        pub type TransactionsOptionsArg;
        #[wasm_bindgen(typescript_type = "ValidateLedgerOptions")]
        pub type ValidateLedgerOptionsArg;
        /// Optional text: the `Option` adds `| null` in the declarations.
        #[wasm_bindgen(typescript_type = "string")]
        pub type MemoArg;
        #[wasm_bindgen(typescript_type = "Date | string | number")]
        pub type InstantArg;
        #[wasm_bindgen(typescript_type = "HealthOptions")]
        pub type HealthOptionsArg;
        #[wasm_bindgen(typescript_type = "ProcessCommissionsOptions")]
        pub type ProcessCommissionsOptionsArg;
        #[wasm_bindgen(typescript_type = "CommissionLineFilter")]
        pub type CommissionLineFilterArg;
        #[wasm_bindgen(typescript_type = "PayoutBatchOptions")]
        pub type PayoutBatchOptionsArg;
        #[wasm_bindgen(typescript_type = "RecordHealthOptions")]
        pub type RecordHealthOptionsArg;
        #[wasm_bindgen(
            typescript_type = "{ reseller?: Reseller | string; status?: HealthAlertStatus }"
        )]
        pub type HealthAlertFilterArg;
        #[wasm_bindgen(typescript_type = "ActorOptions")]
        pub type ActorOptionsArg;
        #[wasm_bindgen(typescript_type = "StatusOptions")]
        pub type StatusOptionsArg;
        #[wasm_bindgen(typescript_type = "AnalyticsDay")]
        pub type AnalyticsDayArg;
        #[wasm_bindgen(typescript_type = "number")]
        pub type LimitArg;

    }

    /// The argument as a plain value; an omitted one is `undefined`.
    pub fn value<T: AsRef<JsValue>>(arg: Option<T>) -> JsValue {
        arg.map_or(JsValue::UNDEFINED, |a| a.as_ref().clone())
    }
}
