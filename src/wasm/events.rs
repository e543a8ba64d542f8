//! The `onEvent` option: the engine's events and every call to a host's storage, each as one
//! object shaped like an OpenTelemetry span, so that a host can hand it to its tracer or count
//! it in its metrics as it is:
//!
//! `{ name, startTime, duration, status, attributes }`: `name` such as `ally.storage.append` or
//! `ally.wallet.replay`, `startTime` in milliseconds since the epoch, `duration` in
//! milliseconds (0 for instant events), `status` `"ok"` or `"error"`, and `attributes` with
//! dotted keys (`ally.storage.operation`, `ally.storage.outcome`, `ally.reseller.id`, …).
//!
//! The listener is called synchronously and must not fail: a throw or a rejection is dropped
//! (the operation it reports goes on).

use std::future::Future;
use std::rc::Rc;

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::input::type_name;
use crate::domain::Error;
use crate::engine::events::{Event, Observer};
use crate::engine::ports::StorageError;

#[wasm_bindgen(typescript_custom_section)]
const EVENTS_TS: &str = r#"
/**
 * One event of the engine's work, shaped like an OpenTelemetry span: storage calls to a host's
 * storage (`ally.storage.get`, `.find`, `.put`, `.append`, `.read`, `.findClaim`, `.lock`,
 * `.unlock`, `.combine`), answers given again from an idempotency key (`ally.wallet.replay`),
 * appends decided again after losing a race (`ally.wallet.retry`) and outbox deliveries
 * (`ally.outbox.attempt`).
 */
export interface AllyEvent {
  name: string;
  /** Milliseconds since the epoch. */
  startTime: number;
  /** Milliseconds; 0 for an instant event. */
  duration: number;
  status: "ok" | "error";
  /** On a failed storage call: what the host's storage threw or rejected with (a driver's error, for the logs; never for a client). */
  exception?: unknown;
  /** Dotted keys: `ally.storage.operation`, `ally.storage.collection` or `ally.storage.stream`, `ally.storage.outcome`, `ally.reseller.id`, `ally.retry.reason`, `ally.outbox.id`, `ally.outbox.attempt`, `ally.mail.kind`, `error.message`, … */
  attributes: Record<string, string | number>;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now, catch)]
    fn performance_now() -> Result<f64, JsValue>;
}

thread_local! {
    /// `performance.timeOrigin`, read once through catching bindings (a runtime may have no
    /// `performance`, or a polluted one).
    static TIME_ORIGIN: Option<f64> = Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .filter(JsValue::is_object)
        .and_then(|performance| Reflect::get(&performance, &"timeOrigin".into()).ok())
        .and_then(|origin| origin.as_f64())
        .filter(|origin| origin.is_finite());
}

/// Milliseconds since the epoch, sub-millisecond where the runtime's `performance` allows.
fn now() -> f64 {
    let origin = TIME_ORIGIN.with(|origin| *origin);
    match (origin, performance_now()) {
        (Some(origin), Ok(elapsed)) if elapsed.is_finite() => origin + elapsed,
        _ => js_sys::Date::now(),
    }
}

/// A host's `onEvent` listener.
pub struct EventSink {
    listener: Function,
}

impl EventSink {
    /// `undefined` is none; anything else must be a function (`INVALID_CONFIG`).
    pub fn from_js(value: &JsValue) -> Result<Option<Rc<Self>>, Error> {
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        value
            .dyn_ref::<Function>()
            .map(|listener| {
                Some(Rc::new(Self {
                    listener: listener.clone(),
                }))
            })
            .ok_or_else(|| Error::InvalidConfig {
                key: "onEvent".to_owned(),
                reason: format!("expected a function, got {}", type_name(value)),
            })
    }

    #[allow(clippy::too_many_arguments)] // a span's own fields
    fn emit(
        &self,
        name: &str,
        start: f64,
        duration: f64,
        error: Option<&str>,
        exception: Option<&JsValue>,
        attributes: &[(&str, JsValue)],
    ) {
        let event = Object::new();
        let set = |object: &Object, key: &str, value: &JsValue| {
            let _ = Reflect::set(object, &key.into(), value);
        };
        let fields = Object::new();
        for (key, value) in attributes {
            set(&fields, key, value);
        }
        if let Some(reason) = error {
            set(&fields, "error.message", &reason.into());
        }
        set(&event, "name", &name.into());
        set(&event, "startTime", &start.into());
        set(&event, "duration", &duration.into());
        set(
            &event,
            "status",
            &if error.is_some() { "error" } else { "ok" }.into(),
        );
        set(&event, "attributes", &fields);
        if let Some(thrown) = exception {
            // What the host's storage threw, as it threw it (a driver's error): for the logs.
            set(&event, "exception", thrown);
        }
        // Whatever the listener does is its own: a throw is dropped, a Promise is not awaited.
        if let Ok(answer) = self.listener.call1(&JsValue::UNDEFINED, &event) {
            if super::input::is_thenable(&answer) {
                let settled = super::input::settle(&answer);
                IGNORE.with(|ignore| {
                    let _ = settled.catch(ignore);
                });
            }
        }
    }

    /// Times one storage call of a host's storage and reports it: its operation, what it was
    /// on (a collection or a stream), and its outcome.
    pub async fn storage_call<T>(
        &self,
        operation: &str,
        on: (&str, &str),
        work: impl Future<Output = Result<T, StorageError>>,
        outcome: impl FnOnce(&T) -> &'static str,
        thrown: impl FnOnce() -> Option<JsValue>,
    ) -> Result<T, StorageError> {
        let start = now();
        let result = work.await;
        let duration = (now() - start).max(0.0);
        let exception = if result.is_err() { thrown() } else { None };
        let (answer, error) = match &result {
            Ok(value) => (outcome(value), None),
            Err(e) => ("error", Some(e.reason.as_str())),
        };
        self.emit(
            &format!("ally.storage.{operation}"),
            start,
            duration,
            error,
            exception.as_ref(),
            &[
                ("ally.storage.operation", operation.into()),
                (on.0, on.1.into()),
                ("ally.storage.outcome", answer.into()),
            ],
        );
        result
    }

    /// The engine's events, reported to this listener.
    pub fn observer(self: &Rc<Self>) -> Observer {
        let sink = Rc::clone(self);
        Rc::new(move |event: &Event<'_>| {
            let at = now();
            match *event {
                Event::Replayed {
                    reseller,
                    key,
                    entries,
                } => sink.emit(
                    "ally.wallet.replay",
                    at,
                    0.0,
                    None,
                    None,
                    &[
                        ("ally.reseller.id", reseller.into()),
                        ("ally.idempotency_key", key.into()),
                        ("ally.wallet.entries", (entries as f64).into()),
                    ],
                ),
                Event::Retried { reseller, reason } => sink.emit(
                    "ally.wallet.retry",
                    at,
                    0.0,
                    None,
                    None,
                    &[
                        ("ally.reseller.id", reseller.into()),
                        ("ally.retry.reason", reason.into()),
                    ],
                ),
                Event::OutboxAttempt {
                    id,
                    kind,
                    attempt,
                    failed,
                } => sink.emit(
                    "ally.outbox.attempt",
                    at,
                    0.0,
                    failed,
                    None,
                    &[
                        ("ally.outbox.id", id.into()),
                        ("ally.mail.kind", kind.into()),
                        ("ally.outbox.attempt", (attempt as f64).into()),
                        (
                            "ally.outbox.outcome",
                            if failed.is_none() { "sent" } else { "failed" }.into(),
                        ),
                    ],
                ),
            }
        })
    }
}

thread_local! {
    /// The one handler that drops a listener's rejection.
    static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_: JsValue| {});
}
