//! Recognising handles the package gave out when a host passes them back.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Weak references from small integers to Rust objects owned by JavaScript handles, so that a
/// handle passed back in (a `MemoryStorage`, a `Catalog`) is recognised without unsafe code.
pub struct Registry<T> {
    next: Cell<u32>,
    items: RefCell<HashMap<u32, Weak<T>>>,
}

impl<T> Registry<T> {
    pub fn new() -> Self {
        Self {
            next: Cell::new(1),
            items: RefCell::new(HashMap::new()),
        }
    }

    pub fn insert(&self, item: &Rc<T>) -> u32 {
        let id = self.next.get();
        self.next.set(id.wrapping_add(1).max(1));
        self.items.borrow_mut().insert(id, Rc::downgrade(item));
        id
    }

    pub fn remove(&self, id: u32) {
        self.items.borrow_mut().remove(&id);
    }

    /// The object behind `value`, if `value` is a live handle whose `method` answers an id here.
    /// The method is read from the handle's own class (its direct prototype), never from
    /// `Object.prototype`: a polluted prototype does not turn a host's plain object into a handle.
    pub fn lookup(&self, value: &JsValue, method: &str) -> Option<Rc<T>> {
        if !value.is_object() {
            return None;
        }
        let class = Reflect::get_prototype_of(value).ok()?;
        if class.is_null() || super::input::is_object_prototype(&class) {
            return None;
        }
        let function = super::input::own_property(&class, method)
            .ok()?
            .dyn_into::<Function>()
            .ok()?;
        let id = function.call0(value).ok()?.as_f64()?;
        let id = u32::try_from(id as u64).ok()?;
        self.items.borrow().get(&id).and_then(Weak::upgrade)
    }
}
