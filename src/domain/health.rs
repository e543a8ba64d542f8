//! Partner health: the reference's seven weighted components, each raw metric normalised to
//! 0–100 between a floor and a target, an explicit policy for missing data, bands, the trend
//! against the previous score, and band changes with hysteresis so a score hovering at a
//! threshold alerts once.
//!
//! Arithmetic is integer fixed point: a normalised value and the score are hundredths of a point
//! (`0..=10_000`), rounded half up once each, so every runtime gives the same score.

use serde_json::{json, Value};

use super::decimal::units_text;
use super::error::{Error, Result};
use super::money::Currency;

/// Hundredths of a point: 100.00 is `10_000`.
pub const POINTS_MAX: u32 = 10_000;

/// The seven components, in the reference's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    RevenuePerformance,
    CustomerAcquisition,
    CustomerRetention,
    GrowthTrajectory,
    Engagement,
    OperationalExcellence,
    PartnerSatisfaction,
}

impl Component {
    pub const ALL: [Self; 7] = [
        Self::RevenuePerformance,
        Self::CustomerAcquisition,
        Self::CustomerRetention,
        Self::GrowthTrajectory,
        Self::Engagement,
        Self::OperationalExcellence,
        Self::PartnerSatisfaction,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RevenuePerformance => "revenuePerformance",
            Self::CustomerAcquisition => "customerAcquisition",
            Self::CustomerRetention => "customerRetention",
            Self::GrowthTrajectory => "growthTrajectory",
            Self::Engagement => "engagement",
            Self::OperationalExcellence => "operationalExcellence",
            Self::PartnerSatisfaction => "partnerSatisfaction",
        }
    }

    /// The raw metric the component reads.
    #[must_use]
    pub const fn metric(self) -> &'static str {
        match self {
            Self::RevenuePerformance => "revenue",
            Self::CustomerAcquisition => "newCustomers",
            Self::CustomerRetention => "retentionRate",
            Self::GrowthTrajectory => "growthRate",
            Self::Engagement => "activeDays",
            Self::OperationalExcellence => "slaCompliance",
            Self::PartnerSatisfaction => "satisfaction",
        }
    }

    /// The reference weights: 25, 20, 20, 15, 10, 5, 5.
    #[must_use]
    pub const fn reference_weight(self) -> u8 {
        match self {
            Self::RevenuePerformance => 25,
            Self::CustomerAcquisition | Self::CustomerRetention => 20,
            Self::GrowthTrajectory => 15,
            Self::Engagement => 10,
            Self::OperationalExcellence | Self::PartnerSatisfaction => 5,
        }
    }

    /// How a raw value is held: money in minor units, counts as themselves, rates in
    /// ten-thousandths, satisfaction (0 to 10) in hundredths.
    #[must_use]
    pub const fn unit(self) -> Unit {
        match self {
            Self::RevenuePerformance => Unit::Money,
            Self::CustomerAcquisition | Self::Engagement => Unit::Count,
            Self::CustomerRetention | Self::OperationalExcellence => Unit::Rate,
            Self::GrowthTrajectory => Unit::SignedRate,
            Self::PartnerSatisfaction => Unit::Score,
        }
    }

    /// The reference floor (normalised 0) and target (normalised 100), in the component's unit
    /// (money at scale 2).
    #[must_use]
    pub const fn reference_range(self) -> Range {
        let (floor, target) = match self {
            // 10 000.00 of revenue in the period.
            Self::RevenuePerformance => (0, 1_000_000),
            // 10 new customers.
            Self::CustomerAcquisition => (0, 10),
            // 70 % retained is 0, 95 % or more is 100.
            Self::CustomerRetention => (7_000, 9_500),
            // Shrinking 10 % is 0, growing 10 % or more is 100; flat is 50.
            Self::GrowthTrajectory => (-1_000, 1_000),
            // Active on 20 days of the period.
            Self::Engagement => (0, 20),
            // 80 % of tickets within the service level is 0, 99 % is 100.
            Self::OperationalExcellence => (8_000, 9_900),
            // 5 of 10 is 0, 9 of 10 is 100.
            Self::PartnerSatisfaction => (500, 900),
        };
        Range { floor, target }
    }
}

/// The unit a raw value is held in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Minor units of the currency, at least 0.
    Money,
    /// A whole count, at least 0.
    Count,
    /// Ten-thousandths in `[0, 1]`.
    Rate,
    /// Ten-thousandths in `[-1, 100]`.
    SignedRate,
    /// Hundredths in `[0, 10]`.
    Score,
}

impl Unit {
    /// The values a raw metric may take, in this unit.
    #[must_use]
    pub const fn bounds(self) -> (i64, i64) {
        match self {
            Self::Money => (0, i64::MAX / 10_000),
            Self::Count => (0, 1_000_000_000),
            Self::Rate => (0, 10_000),
            Self::SignedRate => (-10_000, 1_000_000),
            Self::Score => (0, 1_000),
        }
    }
}

/// Where a component's normalisation starts (0) and ends (100): linear between, clamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub floor: i64,
    pub target: i64,
}

/// Raw metrics of one partner for one period, each in its component's unit; `None` is missing.
pub type Metrics = [Option<i64>; 7];

/// What to do when a metric is missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingPolicy {
    /// Score over the components present, their weights scaled up to 100 (the default).
    #[default]
    Reweight,
    /// A missing component counts as 0.
    Zero,
    /// A missing metric is `INVALID_INPUT`.
    Refuse,
}

impl MissingPolicy {
    pub const ALL: [Self; 3] = [Self::Reweight, Self::Zero, Self::Refuse];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reweight => "reweight",
            Self::Zero => "zero",
            Self::Refuse => "refuse",
        }
    }
}

/// The bands, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Band {
    Healthy,
    AtRisk,
    Critical,
}

impl Band {
    pub const ALL: [Self; 3] = [Self::Healthy, Self::AtRisk, Self::Critical];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::AtRisk => "atRisk",
            Self::Critical => "critical",
        }
    }

    #[must_use]
    pub const fn index(self) -> u8 {
        self as u8
    }
}

/// Which way the score moved against the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Improving,
    Stable,
    Declining,
}

impl Direction {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Improving => "improving",
            Self::Stable => "stable",
            Self::Declining => "declining",
        }
    }
}

/// How scores are made; built valid by [`HealthOptions::new`] or [`Default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthOptions {
    /// Per component, summing to 100.
    weights: [u8; 7],
    ranges: [Range; 7],
    missing: MissingPolicy,
    /// Lowest score of `healthy` and of `atRisk`, in hundredths (default 70.00 and 40.00).
    healthy_from: u32,
    at_risk_from: u32,
    /// How far above a threshold a score must climb to move to the better band (default 5.00).
    hysteresis: u32,
    /// A change smaller than this is `stable` (default 1.00).
    trend_tolerance: u32,
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            weights: Component::ALL.map(Component::reference_weight),
            ranges: Component::ALL.map(Component::reference_range),
            missing: MissingPolicy::Reweight,
            healthy_from: 7_000,
            at_risk_from: 4_000,
            hysteresis: 500,
            trend_tolerance: 100,
        }
    }
}

impl HealthOptions {
    /// Checks the parts: weights sum to 100, every target differs from its floor, the bands are
    /// ordered within 0–100, the hysteresis fits below the healthy threshold.
    pub fn new(
        weights: [u8; 7],
        ranges: [Range; 7],
        missing: MissingPolicy,
        bands: (u32, u32),
        hysteresis: u32,
        trend_tolerance: u32,
    ) -> Result<Self> {
        let sum: u32 = weights.iter().map(|&w| u32::from(w)).sum();
        if sum != 100 {
            return Err(Error::invalid(
                "weights",
                format!("must sum to 100, they sum to {sum}"),
            ));
        }
        for (c, r) in Component::ALL.iter().zip(&ranges) {
            let (low, high) = c.unit().bounds();
            if r.floor == r.target {
                return Err(Error::invalid(
                    format!("targets.{}", c.as_str()),
                    "the target must differ from the floor",
                ));
            }
            if !(low..=high).contains(&r.floor) || !(low..=high).contains(&r.target) {
                return Err(Error::invalid(
                    format!("targets.{}", c.as_str()),
                    "is outside the values the metric can take",
                ));
            }
        }
        let (healthy_from, at_risk_from) = bands;
        if !(at_risk_from < healthy_from && healthy_from <= POINTS_MAX && at_risk_from > 0) {
            return Err(Error::invalid(
                "bands",
                "expected 0 < atRisk < healthy ≤ 100",
            ));
        }
        if hysteresis > POINTS_MAX - healthy_from || hysteresis >= healthy_from - at_risk_from {
            return Err(Error::invalid(
                "hysteresis",
                "must fit above the healthy threshold and be less than the gap between the bands",
            ));
        }
        if trend_tolerance > POINTS_MAX {
            return Err(Error::invalid("trendTolerance", "at most 100"));
        }
        Ok(Self {
            weights,
            ranges,
            missing,
            healthy_from,
            at_risk_from,
            hysteresis,
            trend_tolerance,
        })
    }

    #[must_use]
    pub const fn weights(&self) -> &[u8; 7] {
        &self.weights
    }

    #[must_use]
    pub const fn missing(&self) -> MissingPolicy {
        self.missing
    }

    /// The band of a score with no history.
    #[must_use]
    pub const fn band(&self, score: u32) -> Band {
        if score >= self.healthy_from {
            Band::Healthy
        } else if score >= self.at_risk_from {
            Band::AtRisk
        } else {
            Band::Critical
        }
    }

    /// The band after `score` when the partner was in `previous`: a worse band as soon as the
    /// score falls below its threshold; a better band only once the score is the hysteresis above
    /// that band's threshold.
    #[must_use]
    pub const fn next_band(&self, previous: Option<Band>, score: u32) -> Band {
        let plain = self.band(score);
        let Some(previous) = previous else {
            return plain;
        };
        if (plain as u8) >= (previous as u8) {
            return plain;
        }
        // Climbing: each better band must be cleared with the margin.
        let lifted = score.saturating_sub(self.hysteresis);
        let with_margin = self.band(lifted);
        if (with_margin as u8) < (previous as u8) {
            with_margin
        } else {
            previous
        }
    }

    /// `(previous score, change, direction)` in hundredths.
    #[must_use]
    pub fn trend(&self, previous: u32, score: u32) -> (i64, Direction) {
        let change = i64::from(score) - i64::from(previous);
        let direction = if change.unsigned_abs() < u64::from(self.trend_tolerance) {
            Direction::Stable
        } else if change > 0 {
            Direction::Improving
        } else {
            Direction::Declining
        };
        (change, direction)
    }
}

/// One component's part of a score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComponentScore {
    pub component: Component,
    /// The raw metric, in the component's unit.
    pub raw: Option<i64>,
    /// 0..=10_000, `None` when missing (and not counted as zero).
    pub normalised: Option<u32>,
    /// The configured weight.
    pub weight: u8,
    /// The weight it carried in this score, in hundredths of a percent (reweighted when some
    /// were missing): 2500 is 25.00 %.
    pub effective_weight: u32,
    /// Points it added, in hundredths.
    pub contribution: u32,
}

/// A partner's score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthScore {
    /// 0..=10_000 hundredths of a point.
    pub score: u32,
    pub band: Band,
    pub components: [ComponentScore; 7],
    pub missing: Vec<Component>,
}

/// `value × num / den`, rounded half up, for non-negative `value × num` and positive `den`.
const fn div_half_up(num: i128, den: i128) -> i128 {
    (2 * num + den) / (2 * den)
}

/// The component normalised to 0..=10_000 hundredths.
#[must_use]
pub fn normalise(value: i64, range: Range) -> u32 {
    let (floor, target) = (i128::from(range.floor), i128::from(range.target));
    let span = target - floor;
    let along = i128::from(value) - floor;
    // A target below the floor means less is better: mirror both.
    let (along, span) = if span < 0 {
        (-along, -span)
    } else {
        (along, span)
    };
    if along <= 0 {
        return 0;
    }
    if along >= span {
        return POINTS_MAX;
    }
    div_half_up(along * i128::from(POINTS_MAX), span) as u32
}

/// The score alone and a bit per missing component (bit `i` for `Component::ALL[i]`): the batch
/// path, which allocates nothing. Same checks and the same score as [`health_score`].
pub fn score_only(metrics: &Metrics, options: &HealthOptions) -> Result<(u32, u8)> {
    let mut total: i128 = 0;
    let mut weight_present: u32 = 0;
    let mut missing = 0u8;
    for (i, c) in Component::ALL.iter().enumerate() {
        let normalised = match (metrics[i], options.missing) {
            (Some(v), _) => {
                let (low, high) = c.unit().bounds();
                if !(low..=high).contains(&v) {
                    return Err(Error::invalid(
                        format!("metrics.{}", c.metric()),
                        "is outside the values the metric can take",
                    ));
                }
                Some(normalise(v, options.ranges[i]))
            }
            (None, MissingPolicy::Zero) => Some(0),
            (None, MissingPolicy::Reweight) => None,
            (None, MissingPolicy::Refuse) => {
                return Err(Error::invalid(
                    format!("metrics.{}", c.metric()),
                    "is missing, and the missing-data policy is \"refuse\"",
                ))
            }
        };
        if metrics[i].is_none() {
            missing |= 1 << i;
        }
        if let Some(n) = normalised {
            let w = u32::from(options.weights[i]);
            weight_present += w;
            total += i128::from(n) * i128::from(w);
        }
    }
    if weight_present == 0 {
        return Err(Error::invalid(
            "metrics",
            "no component with a weight has data; at least one is needed",
        ));
    }
    Ok((
        div_half_up(total, i128::from(weight_present)) as u32,
        missing,
    ))
}

/// The score of one partner's metrics (the pure form: nothing is stored). `previous` is the
/// band the partner was in, for hysteresis.
pub fn health_score(
    metrics: &Metrics,
    options: &HealthOptions,
    previous: Option<Band>,
) -> Result<HealthScore> {
    let (score, mask) = score_only(metrics, options)?;
    let components: [ComponentScore; 7] = std::array::from_fn(|i| {
        let normalised = match (metrics[i], options.missing) {
            (Some(v), _) => Some(normalise(v, options.ranges[i])),
            (None, MissingPolicy::Zero) => Some(0),
            (None, _) => None,
        };
        ComponentScore {
            component: Component::ALL[i],
            raw: metrics[i],
            normalised,
            weight: options.weights[i],
            effective_weight: 0,
            contribution: 0,
        }
    });
    // Contributions are the score allocated over the components by their exact weighted
    // values (largest remainder), so that they add up to the score.
    let exact: Vec<i128> = components
        .iter()
        .map(|c| i128::from(c.normalised.unwrap_or(0)) * i128::from(c.weight))
        .collect();
    let contributions = super::commission::allocate(i64::from(score), &exact);
    let weights: Vec<i128> = components
        .iter()
        .map(|c| i128::from(if c.normalised.is_some() { c.weight } else { 0 }))
        .collect();
    let effective = super::commission::allocate(10_000, &weights);
    let mut components = components;
    for (i, c) in components.iter_mut().enumerate() {
        c.contribution = u32::try_from(contributions[i]).unwrap_or(0);
        c.effective_weight = u32::try_from(effective[i]).unwrap_or(0);
    }
    Ok(HealthScore {
        score,
        band: options.next_band(previous, score),
        components,
        missing: Component::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, c)| *c)
            .collect(),
    })
}

/// Hundredths as a decimal text: `7245` is `"72.45"`.
#[must_use]
pub fn points_text(hundredths: i64) -> String {
    let sign = if hundredths < 0 { "-" } else { "" };
    let v = hundredths.unsigned_abs();
    format!("{sign}{}.{:02}", v / 100, v % 100)
}

/// How many decimals a component's raw value has: the currency's for money.
#[must_use]
pub const fn scale_of(unit: Unit, currency: &Currency) -> u32 {
    match unit {
        Unit::Money => currency.scale(),
        Unit::Count => 0,
        Unit::Rate | Unit::SignedRate => 4,
        Unit::Score => 2,
    }
}

/// A score as the plain object hosts receive: the score and band, which components were
/// missing, the trend against `previous` (hundredths), and every component explained.
#[must_use]
pub fn score_json(
    score: &HealthScore,
    options: &HealthOptions,
    currency: &Currency,
    previous: Option<u32>,
) -> Value {
    let trend = previous.map(|previous| {
        let (change, direction) = options.trend(previous, score.score);
        json!({
            "previous": points_text(i64::from(previous)),
            "change": points_text(change),
            "direction": direction.as_str(),
        })
    });
    let components: Vec<Value> = score
        .components
        .iter()
        .map(|c| {
            let unit = c.component.unit();
            json!({
                "component": c.component.as_str(),
                "metric": c.component.metric(),
                "raw": c.raw.map(|v| units_text(v, scale_of(unit, currency))),
                "normalised": c.normalised.map(|n| points_text(i64::from(n))),
                "weight": c.weight,
                "effectiveWeight": points_text(i64::from(c.effective_weight)),
                "contribution": points_text(i64::from(c.contribution)),
            })
        })
        .collect();
    json!({
        "score": points_text(i64::from(score.score)),
        "band": score.band.as_str(),
        "missing": score.missing.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "policy": options.missing().as_str(),
        "trend": trend,
        "components": components,
    })
}

/// Where an alert stands: `open` when raised, `acknowledged` while an intervention is open,
/// `resolved` when the intervention is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub const ALL: [Self; 3] = [Self::Open, Self::Acknowledged, Self::Resolved];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    /// Opening an intervention: only on an open alert.
    pub fn open_intervention(self, key: &str) -> Result<Self> {
        match self {
            Self::Open => Ok(Self::Acknowledged),
            other => Err(other.denied(key, "openIntervention")),
        }
    }

    /// Closing the intervention: only while one is open.
    pub fn close_intervention(self, key: &str) -> Result<Self> {
        match self {
            Self::Acknowledged => Ok(Self::Resolved),
            other => Err(other.denied(key, "closeIntervention")),
        }
    }

    fn denied(self, key: &str, action: &'static str) -> Error {
        Error::StatusTransitionDenied {
            entity: "health alert",
            key: key.to_owned(),
            from: self.as_str().into(),
            action: action.into(),
        }
    }
}

/// Whether moving from `previous` to `band` crosses into a worse band: what raises an alert.
/// The first score of a partner raises one only when it starts below healthy.
#[must_use]
pub fn is_worse(previous: Option<Band>, band: Band) -> bool {
    band > previous.unwrap_or(Band::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(values: [i64; 7]) -> Metrics {
        values.map(Some)
    }

    #[test]
    fn reference_weights_sum_to_100_and_a_perfect_partner_scores_100() {
        let sum: u32 = Component::ALL
            .iter()
            .map(|c| u32::from(c.reference_weight()))
            .sum();
        assert_eq!(sum, 100);
        let options = HealthOptions::default();
        let perfect = all([1_000_000, 10, 9_500, 1_000, 20, 9_900, 900]);
        let s = health_score(&perfect, &options, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.score, s.band), (10_000, Band::Healthy));
        let contributions: Vec<u32> = s.components.iter().map(|c| c.contribution).collect();
        assert_eq!(
            contributions,
            vec![2_500, 2_000, 2_000, 1_500, 1_000, 500, 500]
        );
    }

    #[test]
    fn each_component_normalises_between_floor_and_target() {
        let table = [
            // (component, raw, normalised)
            (Component::RevenuePerformance, 500_000, 5_000),
            (Component::RevenuePerformance, 2_000_000, 10_000),
            (Component::CustomerAcquisition, 3, 3_000),
            (Component::CustomerRetention, 7_000, 0),
            (Component::CustomerRetention, 8_250, 5_000),
            (Component::CustomerRetention, 6_000, 0),
            (Component::GrowthTrajectory, 0, 5_000),
            (Component::GrowthTrajectory, -500, 2_500),
            (Component::GrowthTrajectory, -10_000, 0),
            (Component::Engagement, 7, 3_500),
            (Component::OperationalExcellence, 9_500, 7_895),
            (Component::PartnerSatisfaction, 800, 7_500),
            (Component::PartnerSatisfaction, 1_000, 10_000),
        ];
        for (c, raw, want) in table {
            assert_eq!(normalise(raw, c.reference_range()), want, "{c:?} {raw}");
        }
        // A target below the floor: less is better.
        assert_eq!(
            normalise(
                25,
                Range {
                    floor: 100,
                    target: 0
                }
            ),
            7_500
        );
    }

    #[test]
    fn missing_data_follows_the_policy() {
        let mut m = all([500_000, 5, 8_250, 0, 10, 9_900, 900]);
        m[4] = None;
        m[6] = None;
        let reweighted =
            health_score(&m, &HealthOptions::default(), None).unwrap_or_else(|e| panic!("{e}"));
        // (50·25 + 50·20 + 50·20 + 50·15 + 100·5) / 85 = 52.94
        assert_eq!(reweighted.score, 5_294);
        assert_eq!(
            reweighted.missing,
            vec![Component::Engagement, Component::PartnerSatisfaction]
        );
        let shares: u32 = reweighted
            .components
            .iter()
            .map(|c| c.effective_weight)
            .sum();
        assert_eq!(shares, 10_000);
        let points: u32 = reweighted.components.iter().map(|c| c.contribution).sum();
        assert_eq!(points, reweighted.score);

        let zero = HealthOptions::new(
            Component::ALL.map(Component::reference_weight),
            Component::ALL.map(Component::reference_range),
            MissingPolicy::Zero,
            (7_000, 4_000),
            500,
            100,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            health_score(&m, &zero, None).map(|s| s.score).ok(),
            Some(4_500)
        );
        let refuse = HealthOptions {
            missing: MissingPolicy::Refuse,
            ..HealthOptions::default()
        };
        assert_eq!(
            health_score(&m, &refuse, None).err().map(|e| e.to_string()),
            Some(
                "metrics.activeDays: is missing, and the missing-data policy is \"refuse\""
                    .to_owned()
            )
        );
        assert!(health_score(&[None; 7], &HealthOptions::default(), None).is_err());
    }

    #[test]
    fn options_are_checked() {
        let weights = Component::ALL.map(Component::reference_weight);
        let ranges = Component::ALL.map(Component::reference_range);
        let bad_weights = [30, 20, 20, 15, 10, 5, 5];
        let mut flat = ranges;
        flat[0] = Range {
            floor: 5,
            target: 5,
        };
        for (w, r, bands, hysteresis) in [
            (bad_weights, ranges, (7_000, 4_000), 500),
            (weights, flat, (7_000, 4_000), 500),
            (weights, ranges, (4_000, 7_000), 500),
            (weights, ranges, (10_001, 4_000), 500),
            (weights, ranges, (7_000, 4_000), 3_000),
            (weights, ranges, (9_800, 4_000), 500),
        ] {
            assert_eq!(
                HealthOptions::new(w, r, MissingPolicy::Reweight, bands, hysteresis, 100)
                    .err()
                    .map(|e| e.code().as_str()),
                Some("INVALID_INPUT")
            );
        }
    }

    #[test]
    fn bands_change_with_hysteresis() {
        // Score sequences (hundredths) and the band after each, from no history.
        let o = HealthOptions::default();
        let table: [(&[u32], &[Band]); 5] = [
            (&[8_000, 6_900, 7_100, 7_400, 7_500], {
                use Band::*;
                &[Healthy, AtRisk, AtRisk, AtRisk, Healthy]
            }),
            (&[6_900, 6_950, 7_000, 6_999, 7_000], {
                use Band::*;
                &[AtRisk, AtRisk, AtRisk, AtRisk, AtRisk]
            }),
            (&[3_900, 4_000, 4_499, 4_500, 3_999], {
                use Band::*;
                &[Critical, Critical, Critical, AtRisk, Critical]
            }),
            (&[3_000, 9_000], {
                use Band::*;
                &[Critical, Healthy]
            }),
            (&[9_000, 3_000, 7_400, 7_500], {
                use Band::*;
                &[Healthy, Critical, AtRisk, Healthy]
            }),
        ];
        for (scores, bands) in table {
            let mut band = None;
            let got: Vec<Band> = scores
                .iter()
                .map(|&s| {
                    let next = o.next_band(band, s);
                    band = Some(next);
                    next
                })
                .collect();
            assert_eq!(&got, bands, "{scores:?}");
        }
        assert_eq!(o.trend(7_000, 7_050), (50, Direction::Stable));
        assert_eq!(o.trend(7_000, 7_100), (100, Direction::Improving));
        assert_eq!(o.trend(7_000, 5_000), (-2_000, Direction::Declining));
        assert_eq!(points_text(7_245), "72.45");
        assert_eq!(points_text(-5), "-0.05");
    }

    proptest::proptest! {
        /// For any metrics within their bounds: the score is 0–100, the contributions add up to
        /// it, the effective weights to 100 %, and the batch path gives the same score.
        #[test]
        fn contributions_add_up_and_the_batch_path_agrees(
            values in proptest::collection::vec(proptest::option::of(0i64..2_000_000), 7),
        ) {
            let metrics: Metrics = std::array::from_fn(|i| {
                let (low, high) = Component::ALL[i].unit().bounds();
                values[i].map(|v| low + v % (high.min(2_000_000) - low + 1))
            });
            let options = HealthOptions::default();
            match health_score(&metrics, &options, None) {
                Ok(s) => {
                    proptest::prop_assert!(s.score <= POINTS_MAX);
                    let sum: u32 = s.components.iter().map(|c| c.contribution).sum();
                    proptest::prop_assert_eq!(sum, s.score);
                    let shares: u32 = s.components.iter().map(|c| c.effective_weight).sum();
                    proptest::prop_assert_eq!(shares, 10_000);
                    proptest::prop_assert_eq!(score_only(&metrics, &options).map(|r| r.0).ok(), Some(s.score));
                }
                Err(_) => proptest::prop_assert!(metrics.iter().all(Option::is_none)),
            }
        }
    }
}
