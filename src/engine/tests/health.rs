//! Partner health through the engine: history, alerts once per crossing, the account manager's
//! mail through the outbox, interventions, and a call cut short after its first write.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use chrono::{TimeZone, Utc};
use serde_json::Value;

use super::memory::MemoryStorage;
use super::ports::{FixedClock, MailError, MailMessage, Mailer};
use super::test_support::{run, Failing};
use super::Ally;
use crate::domain::config::Config;
use crate::domain::health::{AlertStatus, Component, HealthOptions, Metrics};
use crate::domain::money::Currency;
use crate::domain::reseller::{Metadata, ResellerDraft, UserId};

#[derive(Clone, Default)]
struct Outbox(Rc<RefCell<Vec<MailMessage>>>);

impl Mailer for Outbox {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        self.0.borrow_mut().push(message.clone());
        Ok(())
    }
}

/// Metrics whose only present component is revenue (reweighted: the score is revenue's).
fn revenue(minor: i64) -> Metrics {
    let mut m: Metrics = [None; 7];
    m[Component::ALL
        .iter()
        .position(|c| c.metric() == "revenue")
        .unwrap_or(0)] = Some(minor);
    m
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn alerts_once_per_crossing_mail_the_manager_and_take_interventions() {
    let storage = Failing {
        inner: Rc::new(MemoryStorage::new()),
        writes_left: Rc::new(Cell::new(None)),
    };
    let mail = Outbox::default();
    let at = Utc
        .with_ymd_and_hms(2026, 11, 1, 9, 0, 0)
        .single()
        .unwrap_or_default();
    let ally = Ally::new(
        Config::default(),
        storage.clone(),
        mail.clone(),
        FixedClock(at),
        3,
    );
    let mut metadata = Metadata::new();
    metadata.insert("accountManager".into(), "am@business.example".into());
    let id = run(ally.create_reseller(ResellerDraft {
        user_id: Some(UserId::Number(1)),
        company_name: Some("Hover & Co".to_owned()),
        metadata: Some(metadata),
        ..ResellerDraft::default()
    }))
    .unwrap_or_else(|e| panic!("{e}"))
    .value
    .id;
    let options = HealthOptions::default();
    let usd = Currency::usd();
    // Revenue target 10 000.00: 800 000 minor units score 80, 690 000 score 69, and so on.
    let sequence = [
        800_000, 690_000, 710_000, 690_000, 740_000, 760_000, 300_000, 200_000,
    ];
    let mut bands = Vec::new();
    let mut alerts = Vec::new();
    for (month, minor) in sequence.iter().enumerate() {
        let done = run(ally.record_health(
            &id,
            &revenue(*minor),
            &options,
            &usd,
            Some(format!("2026-{:02}", month + 1)),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        bands.push(text(&done.score, "band"));
        alerts.push(done.alert.as_ref().map(|a| text(a, "band")));
        assert_eq!(done.event.is_some(), done.alert.is_some());
    }
    // 69 drops to at risk; 71 stays there (5 points of hysteresis); 69 again raises nothing
    // new; 76 climbs back; 30 is critical straight from healthy; 20 stays critical.
    assert_eq!(
        bands,
        ["healthy", "atRisk", "atRisk", "atRisk", "atRisk", "healthy", "critical", "critical"]
    );
    assert_eq!(
        alerts,
        [
            None,
            Some("atRisk".into()),
            None,
            None,
            None,
            None,
            Some("critical".into()),
            None
        ]
    );
    let history = run(ally.health_history(&id)).unwrap_or_default();
    assert_eq!(history.len(), 8);
    assert_eq!(text(&history[1]["trend"], "direction"), "declining");
    assert_eq!(text(&history[1], "period"), "2026-02");
    let sent = mail.0.borrow().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].to, "am@business.example");
    assert!(
        sent[0].subject.contains("atRisk (69.00)"),
        "{}",
        sent[0].subject
    );
    assert!(sent[1].html.contains("Hover &amp; Co"), "{}", sent[1].html);

    let open = run(ally.health_alerts(None, Some(AlertStatus::Open))).unwrap_or_default();
    assert_eq!(open.len(), 2);
    let first = text(&open[0], "id");
    let acknowledged = run(ally.open_intervention(&first, "Call booked", "am@business.example"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(&acknowledged, "status"), "acknowledged");
    let again = run(ally.open_intervention(&first, "Twice", "x"));
    assert_eq!(
        again.err().map(|e| e.code().as_str()),
        Some("STATUS_TRANSITION_DENIED")
    );
    let resolved = run(ally.close_intervention(&first, "Back on plan", "am"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(&resolved, "status"), "resolved");
    assert_eq!(text(&resolved["intervention"], "outcome"), "Back on plan");
    let closed_twice = run(ally.close_intervention(&first, "Again", "am"));
    assert_eq!(
        closed_twice.err().map(|e| e.code().as_str()),
        Some("STATUS_TRANSITION_DENIED")
    );
    assert_eq!(
        run(ally.health_alerts(Some(&id), None))
            .map(|a| a.len())
            .ok(),
        Some(2)
    );
    let missing = run(ally.open_intervention("ha_none", "n", "b"));
    assert_eq!(missing.err().map(|e| e.code().as_str()), Some("NOT_FOUND"));

    // A call cut short after the state record: the next call writes what it left out.
    storage.writes_left.set(Some(1));
    let cut = run(ally.record_health(&id, &revenue(900_000), &options, &usd, None));
    assert_eq!(cut.err().map(|e| e.code().as_str()), Some("STORAGE_FAILED"));
    storage.writes_left.set(None);
    run(ally.record_health(&id, &revenue(100_000), &options, &usd, None))
        .unwrap_or_else(|e| panic!("{e}"));
    let history = run(ally.health_history(&id)).unwrap_or_default();
    let sequences: Vec<u64> = history
        .iter()
        .filter_map(|h| h["sequence"].as_u64())
        .collect();
    assert_eq!(sequences, (1..=10).collect::<Vec<_>>());
    // 90 climbed back to healthy, so 10 alerted again.
    assert_eq!(
        run(ally.health_alerts(Some(&id), None))
            .map(|a| a.len())
            .ok(),
        Some(3)
    );
}
