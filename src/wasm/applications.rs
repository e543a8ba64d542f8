//! `ally.applications`: reseller applications for JavaScript (submit, approve, reject, get,
//! list).

use std::rc::Rc;

use js_sys::Promise;
use serde_json::json;
use wasm_bindgen::prelude::*;

use super::ally::{promise, rejected, reseller_output, Ally, Engine};
use super::codec::to_plain;
use super::error::OrThrow;
use super::input::{self, type_name};
use crate::domain::application::ApplicationStatus;
use crate::domain::money::Rate;
use crate::domain::record::{self as fields, Fields};
use crate::domain::{Error, Result};

#[wasm_bindgen(typescript_custom_section)]
const APPLICATION_TYPES: &str = r#"
/** What a prospective reseller submits. */
export interface ApplicationForm {
  name: string;
  email: string;
  phone: string;
  businessName: string;
  businessAddress: string;
  businessType: "individual" | "company";
  expectedCustomers: number;
  /** Must be `true`. */
  termsAccepted: boolean;
}

export type ApplicationStatus = "pending" | "approved" | "rejected";

export interface ResellerApplication extends Omit<ApplicationForm, "termsAccepted"> {
  id: string;
  status: ApplicationStatus;
  submittedAt: string;
  decidedAt: string | null;
  decidedBy: string | null;
  commissionRate: string | null;
  notes: string | null;
  rejectionReason: string | null;
  /** The reseller the approval created or activated. */
  resellerId: string | null;
}

export interface ApproveOptions {
  /** In [0, 1], at most 4 decimals. */
  commissionRate: Rate;
  notes?: string;
  approvedBy: string;
}

export interface RejectOptions {
  reason: string;
  rejectedBy: string;
}
"#;

/// Reseller applications: `ally.applications.submit(form)`, `.approve(id, { commissionRate,
/// notes, approvedBy })`, `.reject(id, { reason, rejectedBy })`, `.get(id)`, `.list({ status })`.
/// Only a pending application changes; anything else is `STATUS_TRANSITION_DENIED`.
#[wasm_bindgen]
pub struct Applications {
    engine: Rc<Engine>,
}

#[wasm_bindgen]
impl Ally {
    /// Reseller applications.
    #[wasm_bindgen(getter)]
    pub fn applications(&self) -> Applications {
        Applications {
            engine: Rc::clone(&self.engine),
        }
    }
}

fn id_arg(value: &JsValue) -> Result<String> {
    input::string(value, "id")
}

fn rate_value(value: Option<serde_json::Value>, field: &str) -> Result<Rate> {
    match value {
        Some(serde_json::Value::String(text)) => Rate::parse(&text, field),
        Some(serde_json::Value::Number(n)) => Rate::parse(&fields::number_text(&n), field),
        Some(other) => Err(Error::invalid(
            field,
            format!(
                "expected a rate in [0, 1], got {}",
                fields::describe(&other)
            ),
        )),
        None => Err(Error::invalid(field, "is required")),
    }
}

#[wasm_bindgen]
impl Applications {
    /// Records a pending application; `INVALID_INPUT` names the first bad field.
    #[wasm_bindgen(unchecked_return_type = "Promise<ResellerApplication>")]
    pub fn submit(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ApplicationForm")] form: JsValue,
    ) -> Promise {
        let form = match input::to_json(&form, "application") {
            Ok(f) => f,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move { to_plain(&engine.submit_application(form).await.or_throw()?) })
    }

    /// Approves a pending application: creates (or activates) its reseller with the rate.
    #[wasm_bindgen(
        unchecked_return_type = "Promise<{ application: ResellerApplication; reseller: Reseller }>"
    )]
    pub fn approve(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ApproveOptions")] options: JsValue,
    ) -> Promise {
        let parsed = (|| {
            let id = id_arg(&id)?;
            let mut f = Fields::new(input::to_json(&options, "options")?, "options")?;
            let rate = rate_value(f.take("commissionRate"), "options.commissionRate")?;
            let notes = f.opt_string("notes")?;
            let by = f.string("approvedBy")?;
            f.finish(&["commissionRate", "notes", "approvedBy"])?;
            Ok((id, rate, notes, by))
        })();
        let (id, rate, notes, by) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let (application, reseller) = engine
                .approve_application(&id, rate, notes, by)
                .await
                .or_throw()?;
            to_plain(&json!({
                "application": application,
                "reseller": reseller_output(&reseller),
            }))
        })
    }

    /// Rejects a pending application; `reason` is required.
    #[wasm_bindgen(unchecked_return_type = "Promise<ResellerApplication>")]
    pub fn reject(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "RejectOptions")] options: JsValue,
    ) -> Promise {
        let parsed = (|| {
            let id = id_arg(&id)?;
            let mut f = Fields::new(input::to_json(&options, "options")?, "options")?;
            let reason = f.string("reason")?;
            let by = f.string("rejectedBy")?;
            f.finish(&["reason", "rejectedBy"])?;
            Ok((id, reason, by))
        })();
        let (id, reason, by) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            to_plain(
                &engine
                    .reject_application(&id, reason, by)
                    .await
                    .or_throw()?,
            )
        })
    }

    /// The application with this id, or null.
    #[wasm_bindgen(unchecked_return_type = "Promise<ResellerApplication | null>")]
    pub fn get(&self, #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue) -> Promise {
        let id = match id_arg(&id) {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            match engine.find_application(&id).await.or_throw()? {
                Some(found) => to_plain(&found.value),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Applications oldest first, optionally of one status.
    #[wasm_bindgen(unchecked_return_type = "Promise<ResellerApplication[]>")]
    pub fn list(
        &self,
        #[wasm_bindgen(unchecked_param_type = "{ status?: ApplicationStatus }")] filter: JsValue,
    ) -> Promise {
        let parsed = (|| {
            if !(filter.is_undefined() || filter.is_null() || input::is_plain(&filter)) {
                return Err(Error::invalid(
                    "filter",
                    format!("expected an object, got {}", type_name(&filter)),
                ));
            }
            let mut f = input::record(&filter, "filter")?;
            let status =
                f.opt_choice("status", &ApplicationStatus::ALL, ApplicationStatus::as_str)?;
            f.finish(&["status"])?;
            Ok(status)
        })();
        let status = match parsed {
            Ok(s) => s,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move { to_plain(&engine.list_applications(status).await.or_throw()?) })
    }
}
