//! `ally.onboarding` and the clients' lifecycle (`ally.clients.lifecycle`, `.moveTo`) for
//! JavaScript.

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::ally::{call, record_id, reseller_id, Ally, Engine};
use super::clients::Clients;
use super::codec::to_plain;
use super::error::OrThrow;
use super::input;
use super::types::optional::{self, ActorOptionsArg};
use crate::domain::{Error, Result};
use crate::engine::check_note;

#[wasm_bindgen(typescript_custom_section)]
const WORKFLOW_TYPES: &str = r#"
/** An onboarding task (config `onboarding`: `[{ key, title, required?, dependsOn? }]`). */
export interface OnboardingTaskConfig {
  key: string;
  title: string;
  /** Counted in progress (default true). */
  required?: boolean;
  /** Earlier tasks that must be done first. */
  dependsOn?: string[];
}

/** A lifecycle stage (config `lifecycle`: `[{ key, title, next? }]`; clients start at the first). */
export interface LifecycleStageConfig {
  key: string;
  title: string;
  /** The stages it may move to. */
  next?: string[];
}

export interface OnboardingProgress {
  resellerId: string;
  /** Required tasks done, of `total`. */
  completed: number;
  total: number;
  /** Percent of the required tasks done, 2 decimals, rounded down: "100.00" only when all are. */
  progress: string;
  done: boolean;
  tasks: {
    key: string; title: string; required: boolean; dependsOn: string[];
    done: boolean;
    /** Not done, and its dependencies are. */
    available: boolean;
    completedAt: string | null;
    completedBy: string | null;
  }[];
}

export interface ClientLifecycle {
  clientId: string;
  stage: string;
  title: string;
  /** The stages it may move to now. */
  next: string[];
  /** How far along the journey, in percent with 2 decimals (first stage 0, last 100). */
  progress: string;
  /** Its moves, oldest first (the last 200). */
  history: { from: string; to: string; at: string; by: string | null }[];
}

export interface ActorOptions {
  /** Who did it, recorded with the change. */
  by?: string;
}
"#;

fn actor(options: &JsValue) -> Result<Option<String>> {
    let mut f = input::record(options, "options")?;
    let by = f.opt_string("by")?;
    f.finish(&["by"])?;
    by.map(|b| check_note(&b, "options.by")).transpose()
}

fn key(value: &JsValue, field: &str) -> Result<String> {
    let text = input::string(value, field)?;
    if text.is_empty() || text.len() > crate::domain::workflow::KEY_LEN_MAX {
        return Err(Error::invalid(field, "expected a step key"));
    }
    Ok(text)
}

/// A reseller's onboarding checklist: `ally.onboarding`.
#[wasm_bindgen]
pub struct Onboarding {
    engine: Rc<Engine>,
}

#[wasm_bindgen]
impl Ally {
    /// The resellers' onboarding checklist and their progress.
    #[wasm_bindgen(getter)]
    pub fn onboarding(&self) -> Onboarding {
        Onboarding {
            engine: Rc::clone(&self.engine),
        }
    }
}

#[wasm_bindgen]
impl Onboarding {
    /// Every task, done or not, and the progress over the required ones.
    #[wasm_bindgen(unchecked_return_type = "Promise<OnboardingProgress>")]
    pub fn progress(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        call(
            &self.engine,
            reseller_id(&reseller, "reseller"),
            |engine, id| async move { to_plain(&engine.onboarding(&id).await.or_throw()?) },
        )
    }

    /// Marks a task done; its dependencies must be done first (`INVALID_INPUT` naming them).
    #[wasm_bindgen(unchecked_return_type = "Promise<OnboardingProgress>")]
    pub fn complete(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] task: JsValue,
        options: Option<ActorOptionsArg>,
    ) -> Promise {
        let options: JsValue = optional::value(options);
        let parsed = reseller_id(&reseller, "reseller")
            .and_then(|id| Ok((id, key(&task, "task")?, actor(&options)?)));
        call(&self.engine, parsed, |engine, (id, task, by)| async move {
            to_plain(
                &engine
                    .complete_task(&id, &task, by.as_deref())
                    .await
                    .or_throw()?,
            )
        })
    }

    /// Marks a done task not done again, when no done task depends on it.
    #[wasm_bindgen(unchecked_return_type = "Promise<OnboardingProgress>")]
    pub fn reopen(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] task: JsValue,
    ) -> Promise {
        let parsed =
            reseller_id(&reseller, "reseller").and_then(|id| Ok((id, key(&task, "task")?)));
        call(&self.engine, parsed, |engine, (id, task)| async move {
            to_plain(&engine.reopen_task(&id, &task).await.or_throw()?)
        })
    }
}

#[wasm_bindgen]
impl Clients {
    /// The client's lifecycle stage, where it may move, and its moves.
    #[wasm_bindgen(unchecked_return_type = "Promise<ClientLifecycle>")]
    pub fn lifecycle(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Client | string")] client: JsValue,
    ) -> Promise {
        let scope = self.scope();
        call(
            &self.engine(),
            record_id(&client, "client", "client"),
            |engine, id| async move {
                super::clients::own_client(&engine, scope.as_deref(), &id)
                    .await
                    .or_throw()?;
                to_plain(&engine.lifecycle(&id).await.or_throw()?)
            },
        )
    }

    /// Moves the client to a stage its current stage lists; any other move is
    /// `STATUS_TRANSITION_DENIED`.
    #[wasm_bindgen(js_name = moveTo, unchecked_return_type = "Promise<ClientLifecycle>")]
    pub fn move_to(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Client | string")] client: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] stage: JsValue,
        options: Option<ActorOptionsArg>,
    ) -> Promise {
        let options: JsValue = optional::value(options);
        let parsed = record_id(&client, "client", "client")
            .and_then(|id| Ok((id, key(&stage, "stage")?, actor(&options)?)));
        let scope = self.scope();
        call(
            &self.engine(),
            parsed,
            |engine, (id, stage, by)| async move {
                super::clients::own_client(&engine, scope.as_deref(), &id)
                    .await
                    .or_throw()?;
                to_plain(
                    &engine
                        .move_stage(&id, &stage, by.as_deref())
                        .await
                        .or_throw()?,
                )
            },
        )
    }
}
