//! `ally.clients`: the customers resellers serve, for JavaScript.

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use super::ally::{promise, record_id, rejected, reseller_id, Ally, Engine};
use super::codec::to_plain;
use super::error::OrThrow;
use super::input;
use super::types::optional;
use crate::domain::client::{self, ClientAction, ClientDraft};
use crate::domain::permissions;
use crate::domain::reseller;
use crate::domain::{Error, Result};
use crate::engine::Versioned;

#[wasm_bindgen(typescript_custom_section)]
const CLIENT_TYPES: &str = r#"
export type ClientStatus = "pending" | "active" | "suspended" | "inactive";

/** A client: a customer a reseller serves (or a standalone customer, with `resellerId: null`). */
export interface Client {
  id: string;
  /** Public, non-sequential reference, e.g. `"CL-7K3M9Q2XAB"` (prefix from `clientRefidPrefix`). */
  refid: string;
  name: string;
  email: string | null;
  resellerId: string | null;
  status: ClientStatus;
  metadata: Record<string, JsonValue>;
  createdAt: string;
  updatedAt: string;
  version: number;
}
"#;

/// Clients: `ally.clients.make().name(n).email(e).reseller(id).metadata(obj).create()`, lookups,
/// and the status transitions (pending → active; active → suspended; suspended or inactive →
/// active; pending, active or suspended → inactive; anything else `STATUS_TRANSITION_DENIED`).
/// From `ally.asReseller(id).clients`, only that reseller's clients can be seen or changed:
/// another reseller's client answers as a missing one (`null`, `NOT_FOUND`), another reseller
/// named answers as a missing reseller (`NOT_FOUND`), and new clients are its own.
#[wasm_bindgen]
pub struct Clients {
    engine: Rc<Engine>,
    scope: Option<String>,
}

impl Clients {
    pub(super) fn new(engine: Rc<Engine>, scope: Option<String>) -> Self {
        Self { engine, scope }
    }

    pub(super) fn engine(&self) -> Rc<Engine> {
        Rc::clone(&self.engine)
    }

    pub(super) fn scope(&self) -> Option<String> {
        self.scope.clone()
    }
}

/// The reseller a call of a handle names (a record or an id), or through a reseller's handle
/// nothing: the handle's own. `Engine::scoped_reseller` resolves it.
fn named_reseller(scope: Option<&str>, value: &JsValue) -> Result<Option<String>> {
    if scope.is_some() && (value.is_undefined() || value.is_null()) {
        return Ok(None);
    }
    reseller_id(value, "reseller").map(Some)
}

/// Whether a handle sees a client of `owner`: a scoped handle its reseller's own only. Another
/// reseller's client answers as a missing one does, so that neither its reseller nor whether it
/// exists is told.
fn in_scope(scope: Option<&str>, owner: Option<&str>) -> bool {
    scope.is_none_or(|own| owner == Some(own))
}

/// Through a scoped handle, the client must be the reseller's own: `NOT_FOUND` otherwise, as
/// when there is no such client.
pub(super) async fn own_client(engine: &Engine, scope: Option<&str>, id: &str) -> Result<()> {
    if scope.is_none() {
        return Ok(());
    }
    engine.require_scope(scope).await?;
    engine
        .find_client(id)
        .await?
        .filter(|found| in_scope(scope, found.value.reseller_id.as_deref()))
        .map(|_| ())
        .ok_or_else(|| Error::NotFound {
            entity: "client",
            key: id.to_owned(),
        })
}

/// A client read through a handle: `null` when it is missing or not the scoped reseller's own.
fn visible(
    scope: Option<&str>,
    found: Option<Versioned<client::Client>>,
) -> std::result::Result<JsValue, JsValue> {
    match found.filter(|found| in_scope(scope, found.value.reseller_id.as_deref())) {
        Some(found) => client_js(&found),
        None => Ok(JsValue::NULL),
    }
}

#[wasm_bindgen]
impl Ally {
    /// Clients.
    #[wasm_bindgen(getter)]
    pub fn clients(&self) -> Clients {
        Clients::new(Rc::clone(&self.engine), None)
    }
}

fn client_js(found: &Versioned<client::Client>) -> std::result::Result<JsValue, JsValue> {
    let mut value = serde_json::to_value(&found.value).map_err(|e| {
        super::error::to_js(&Error::invalid(
            "client",
            format!("could not be encoded: {e}"),
        ))
    })?;
    value["version"] = found.version.into();
    to_plain(&value)
}

/// A client record or its id.
fn client_id(value: &JsValue) -> Result<String> {
    record_id(value, "client", "client")
}

#[wasm_bindgen]
impl Clients {
    /// A builder for a new client.
    pub fn make(&self) -> ClientBuilder {
        ClientBuilder {
            engine: Rc::clone(&self.engine),
            draft: ClientDraft {
                reseller_id: self.scope.clone(),
                ..ClientDraft::default()
            },
            scope: self.scope.clone(),
        }
    }

    /// The client with this id, or null.
    #[wasm_bindgen(unchecked_return_type = "Promise<Client | null>")]
    pub fn find(&self, #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue) -> Promise {
        let id = match input::string(&id, "id") {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let (engine, scope) = (Rc::clone(&self.engine), self.scope.clone());
        promise(async move {
            engine.require_scope(scope.as_deref()).await.or_throw()?;
            let found = engine.find_client(&id).await.or_throw()?;
            visible(scope.as_deref(), found)
        })
    }

    /// The client with this refid, or null.
    #[wasm_bindgen(js_name = findByRefid, unchecked_return_type = "Promise<Client | null>")]
    pub fn find_by_refid(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] refid: JsValue,
    ) -> Promise {
        let refid = match input::string(&refid, "refid") {
            Ok(r) => r,
            Err(e) => return rejected(&e),
        };
        let (engine, scope) = (Rc::clone(&self.engine), self.scope.clone());
        promise(async move {
            engine.require_scope(scope.as_deref()).await.or_throw()?;
            let found = engine.find_client_by_refid(&refid).await.or_throw()?;
            visible(scope.as_deref(), found)
        })
    }

    /// A reseller's clients, oldest first. Through a reseller's handle, its own by default.
    #[wasm_bindgen(js_name = getByReseller, unchecked_return_type = "Promise<Client[]>")]
    pub fn get_by_reseller(&self, reseller: Option<optional::ResellerArg>) -> Promise {
        let reseller: JsValue = optional::value(reseller);
        let named = match named_reseller(self.scope.as_deref(), &reseller) {
            Ok(named) => named,
            Err(e) => return rejected(&e),
        };
        let (engine, scope) = (Rc::clone(&self.engine), self.scope.clone());
        promise(async move {
            engine.require_scope(scope.as_deref()).await.or_throw()?;
            let id = engine
                .scoped_reseller(scope.as_deref(), named.as_deref())
                .await
                .or_throw()?;
            let found = engine.clients_of_reseller(&id).await.or_throw()?;
            let list = js_sys::Array::new();
            for client in &found {
                list.push(&client_js(client)?);
            }
            Ok(list.into())
        })
    }

    fn act(&self, client: &JsValue, action: ClientAction) -> Promise {
        let id = match client_id(client) {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let (engine, scope) = (Rc::clone(&self.engine), self.scope.clone());
        promise(async move {
            own_client(&engine, scope.as_deref(), &id)
                .await
                .or_throw()?;
            client_js(&engine.transition_client(&id, action).await.or_throw()?)
        })
    }

    /// pending, suspended or inactive → active.
    #[wasm_bindgen(unchecked_return_type = "Promise<Client>")]
    pub fn activate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Client | string")] client: JsValue,
    ) -> Promise {
        self.act(&client, ClientAction::Activate)
    }

    /// active → suspended.
    #[wasm_bindgen(unchecked_return_type = "Promise<Client>")]
    pub fn suspend(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Client | string")] client: JsValue,
    ) -> Promise {
        self.act(&client, ClientAction::Suspend)
    }

    /// pending, active or suspended → inactive.
    #[wasm_bindgen(unchecked_return_type = "Promise<Client>")]
    pub fn deactivate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Client | string")] client: JsValue,
    ) -> Promise {
        self.act(&client, ClientAction::Deactivate)
    }
}

/// Builds a client; each setter checks its value at once and returns a new builder.
#[wasm_bindgen]
#[derive(Clone)]
pub struct ClientBuilder {
    engine: Rc<Engine>,
    draft: ClientDraft,
    /// The reseller of a scoped handle: the only one the client may be given to.
    scope: Option<String>,
}

impl ClientBuilder {
    fn with(&self, change: impl FnOnce(&mut ClientDraft)) -> ClientBuilder {
        let mut next = self.clone();
        change(&mut next.draft);
        next
    }
}

#[wasm_bindgen]
impl ClientBuilder {
    pub fn name(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
    ) -> std::result::Result<ClientBuilder, JsValue> {
        let name = input::string(&name, "name")
            .and_then(|n| client::name(&n, "name"))
            .or_throw()?;
        Ok(self.with(|d| d.name = Some(name)))
    }

    pub fn email(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] email: JsValue,
    ) -> std::result::Result<ClientBuilder, JsValue> {
        let email = input::string(&email, "email")
            .and_then(|e| client::client_email(&e, "email"))
            .or_throw()?;
        Ok(self.with(|d| d.email = Some(email)))
    }

    /// The reseller serving the client (a record or its id); it must exist and be active.
    pub fn reseller(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> std::result::Result<ClientBuilder, JsValue> {
        // Through a reseller's handle, `create` checks that it names the handle's own.
        let id = reseller_id(&reseller, "reseller").or_throw()?;
        Ok(self.with(|d| d.reseller_id = Some(id)))
    }

    /// Free-form JSON data (at most 16 KiB).
    pub fn metadata(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Record<string, JsonValue>")] value: JsValue,
    ) -> std::result::Result<ClientBuilder, JsValue> {
        let parsed = input::to_json(&value, "metadata").and_then(|json| match json {
            serde_json::Value::Object(map) => reseller::metadata(map, "metadata"),
            _ => Err(Error::invalid("metadata", "expected a plain object")),
        });
        let map = parsed.or_throw()?;
        Ok(self.with(|d| d.metadata = Some(map)))
    }

    /// Creates the client: pending, with a fresh refid. `DUPLICATE_EMAIL`, `INVALID_RESELLER`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Client>")]
    pub fn create(&self) -> Promise {
        let (engine, scope) = (Rc::clone(&self.engine), self.scope.clone());
        let mut draft = self.draft.clone();
        promise(async move {
            engine.require_scope(scope.as_deref()).await.or_throw()?;
            if scope.is_some() {
                // A reseller's handle creates its own clients, whoever else was named.
                let own = engine
                    .scoped_reseller(scope.as_deref(), draft.reseller_id.as_deref())
                    .await
                    .or_throw()?;
                draft.reseller_id = Some(own);
            }
            client_js(&engine.create_client(draft).await.or_throw()?)
        })
    }
}

#[wasm_bindgen]
impl Ally {
    /// Whether the reseller may manage the client: only its own clients, only while active.
    /// Unknown records are `NOT_FOUND`.
    #[wasm_bindgen(js_name = canManageChildAccount, unchecked_return_type = "Promise<boolean>")]
    pub fn can_manage_child_account(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Client | string")] client: JsValue,
    ) -> Promise {
        self.check_pair(&reseller, &client, permissions::can_manage_child_account)
    }

    /// Whether the reseller may take the client as a child account: it is active, and the
    /// client is standalone (or already its own) and not inactive.
    #[wasm_bindgen(js_name = canAssignChildAccount, unchecked_return_type = "Promise<boolean>")]
    pub fn can_assign_child_account(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Client | string")] client: JsValue,
    ) -> Promise {
        self.check_pair(&reseller, &client, permissions::can_assign_child_account)
    }

    /// Whether the reseller may open the reseller dashboard: while it is active.
    #[wasm_bindgen(js_name = canViewResellerDashboard, unchecked_return_type = "Promise<boolean>")]
    pub fn can_view_reseller_dashboard(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        let id = match reseller_id(&reseller, "reseller") {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let r = engine.require_reseller(&id).await.or_throw()?;
            Ok(permissions::can_view_reseller_dashboard(&r.value).into())
        })
    }
}

impl Ally {
    /// Reads both records from storage (a record passed in is read again, so a stale copy
    /// cannot grant what the stored one would not) and applies `check`.
    fn check_pair(
        &self,
        reseller: &JsValue,
        client: &JsValue,
        check: fn(&crate::domain::reseller::Reseller, &client::Client) -> bool,
    ) -> Promise {
        let ids = reseller_id(reseller, "reseller").and_then(|r| Ok((r, client_id(client)?)));
        let (reseller_id, client_id) = match ids {
            Ok(ids) => ids,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let r = engine.require_reseller(&reseller_id).await.or_throw()?;
            let c = engine
                .find_client(&client_id)
                .await
                .or_throw()?
                .ok_or_else(|| Error::NotFound {
                    entity: "client",
                    key: client_id.clone(),
                })
                .or_throw()?;
            Ok(check(&r.value, &c.value).into())
        })
    }
}
