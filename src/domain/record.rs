//! Typed readers over a JSON record: each read names the full path of the field in its error, and
//! `finish` refuses keys nobody read. The bindings read host input with them (after walking the JS
//! value into JSON), and the engine reads stored records with them. Hand-written rather than
//! derived: derived serde deserialisers with path tracking cost more of the wasm module than the
//! whole pricing code, and their messages say less.

use serde_json::{Map, Value};

use super::decimal::printable;
use super::error::Error;
use super::money::Credits;

/// The fields of one record, consumed as they are read.
pub struct Fields {
    map: Map<String, Value>,
    path: String,
}

/// The path of `key` under `path`.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A JSON number as JavaScript prints it (see `decimal::js_number`).
pub fn number_text(number: &serde_json::Number) -> String {
    match number.as_f64() {
        Some(value) if number.is_f64() => super::decimal::js_number(value),
        _ => serde_json::to_string(number).unwrap_or_default(),
    }
}

/// A JSON value's type for messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {}", number_text(n)),
        Value::String(s) => format!("the string \"{}\"", printable(s)),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A count of units (a block size, free units): a whole number from 0 to `max`.
pub fn units(value: &Value, path: &str, max: u64) -> Result<u64, Error> {
    match value.as_u64() {
        Some(n) if n <= max => Ok(n),
        _ => Err(Error::invalid(
            path,
            format!(
                "expected a whole number of units from 0 to {max}, got {}",
                describe(value)
            ),
        )),
    }
}

/// What a whole number counts, for messages: credits, or a plain count (a quantity, a limit,
/// a sequence number, a version).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whole {
    Credits,
    Count,
}

impl Whole {
    fn noun(self) -> &'static str {
        match self {
            Self::Credits => "whole credits",
            Self::Count => "a whole number",
        }
    }

    fn fraction(self) -> &'static str {
        match self {
            Self::Credits => "credits are whole units, got a fraction",
            Self::Count => "expected a whole number, got a fraction",
        }
    }

    /// What "must be …" is said of.
    fn subject(self) -> &'static str {
        match self {
            Self::Credits => "credits ",
            Self::Count => "",
        }
    }
}

/// Whole credits: a safe, non-negative integer.
pub fn credits(value: &Value, path: &str) -> Result<Credits, Error> {
    whole(value, path, Whole::Credits)
}

/// A count (a quantity, a limit, a sequence number): a safe, non-negative integer.
pub fn count(value: &Value, path: &str) -> Result<u64, Error> {
    whole(value, path, Whole::Count).map(Credits::get)
}

/// A safe, non-negative integer, the messages naming what it counts.
pub fn whole(value: &Value, path: &str, what: Whole) -> Result<Credits, Error> {
    let subject = what.subject();
    match value {
        Value::Number(n) => {
            if let Some(whole) = n.as_u64() {
                return Credits::new(whole).ok_or_else(|| {
                    Error::invalid(
                        path,
                        format!(
                            "{subject}must be at most 9007199254740991 (2^53 - 1), got {whole}"
                        ),
                    )
                });
            }
            if n.as_i64().is_some_and(|v| v < 0) || n.as_f64().is_some_and(|v| v < 0.0) {
                return Err(Error::invalid(
                    path,
                    format!("{subject}must not be negative, got {}", number_text(n)),
                ));
            }
            match n.as_f64() {
                Some(v) if v.fract() != 0.0 => Err(Error::invalid(
                    path,
                    format!("{}: {}", what.fraction(), number_text(n)),
                )),
                _ => Err(Error::invalid(
                    path,
                    format!(
                        "{subject}must be at most 9007199254740991 (2^53 - 1), got {}",
                        number_text(n)
                    ),
                )),
            }
        }
        other => Err(Error::invalid(
            path,
            format!(
                "expected {} (a number), got {}",
                what.noun(),
                describe(other)
            ),
        )),
    }
}

/// A decimal as text: a string as written, or a number as JSON prints it (never an exponent for
/// the values the walker lets through below 1e21; an exponent is refused by the grammar).
pub fn decimal_text(value: &Value, path: &str) -> Result<String, Error> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(number_text(n)),
        other => Err(Error::invalid(
            path,
            format!(
                "expected a decimal string or a number, got {}",
                describe(other)
            ),
        )),
    }
}

impl Fields {
    /// The record at `path`, which must be an object.
    pub fn new(value: Value, path: &str) -> Result<Self, Error> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                path: path.to_owned(),
            }),
            other => Err(Error::invalid(
                path,
                format!("expected an object, got {}", describe(&other)),
            )),
        }
    }

    /// `null` and absent both read as an empty record.
    pub fn optional(value: Option<Value>, path: &str) -> Result<Self, Error> {
        match value {
            None | Some(Value::Null) => Ok(Self {
                map: Map::new(),
                path: path.to_owned(),
            }),
            Some(value) => Self::new(value, path),
        }
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Takes a field; `null` counts as absent.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    fn required(&mut self, key: &str) -> Result<Value, Error> {
        self.take(key)
            .ok_or_else(|| Error::invalid(self.path(key), "is required"))
    }

    pub fn string(&mut self, key: &str) -> Result<String, Error> {
        let value = self.required(key)?;
        self.as_string(value, key)
    }

    pub fn opt_string(&mut self, key: &str) -> Result<Option<String>, Error> {
        self.take(key).map(|v| self.as_string(v, key)).transpose()
    }

    fn as_string(&self, value: Value, key: &str) -> Result<String, Error> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(Error::invalid(
                self.path(key),
                format!("expected a string, got {}", describe(&other)),
            )),
        }
    }

    pub fn credits(&mut self, key: &str) -> Result<Credits, Error> {
        let value = self.required(key)?;
        credits(&value, &self.path(key))
    }

    pub fn opt_credits(&mut self, key: &str) -> Result<Option<Credits>, Error> {
        self.take(key)
            .map(|v| credits(&v, &self.path(key)))
            .transpose()
    }

    /// A required count: a whole number from 0 to 2^53 - 1.
    pub fn count(&mut self, key: &str) -> Result<u64, Error> {
        let value = self.required(key)?;
        count(&value, &self.path(key))
    }

    pub fn opt_count(&mut self, key: &str) -> Result<Option<u64>, Error> {
        self.take(key)
            .map(|v| count(&v, &self.path(key)))
            .transpose()
    }

    /// An optional count of units within `0..=max` (`null` reads as absent).
    pub fn opt_units(&mut self, key: &str, max: u64) -> Result<Option<u64>, Error> {
        self.take(key)
            .map(|v| units(&v, &self.path(key), max))
            .transpose()
    }

    pub fn decimal(&mut self, key: &str) -> Result<String, Error> {
        let value = self.required(key)?;
        decimal_text(&value, &self.path(key))
    }

    pub fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(Error::invalid(
                self.path(key),
                format!("expected a boolean, got {}", describe(&other)),
            )),
        }
    }

    /// A required array, with each item's path.
    pub fn array(&mut self, key: &str) -> Result<Vec<(String, Value)>, Error> {
        let value = self.required(key)?;
        self.as_array(value, key)
    }

    pub fn opt_array(&mut self, key: &str) -> Result<Option<Vec<(String, Value)>>, Error> {
        self.take(key).map(|v| self.as_array(v, key)).transpose()
    }

    /// A required array's items without their paths: [`Fields::item_path`] names one when it is
    /// wrong.
    pub fn values(&mut self, key: &str) -> Result<Vec<Value>, Error> {
        match self.required(key)? {
            Value::Array(items) => Ok(items),
            other => Err(Error::invalid(
                self.path(key),
                format!("expected an array, got {}", describe(&other)),
            )),
        }
    }

    /// The path of item `index` of the array at `key`.
    #[must_use]
    pub fn item_path(&self, key: &str, index: usize) -> String {
        format!("{}[{index}]", self.path(key))
    }

    fn as_array(&self, value: Value, key: &str) -> Result<Vec<(String, Value)>, Error> {
        let path = self.path(key);
        match value {
            Value::Array(items) => Ok(items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}[{i}]"), v))
                .collect()),
            other => Err(Error::invalid(
                path,
                format!("expected an array, got {}", describe(&other)),
            )),
        }
    }

    pub fn opt_object(&mut self, key: &str) -> Result<Option<Fields>, Error> {
        let path = self.path(key);
        self.take(key).map(|v| Fields::new(v, &path)).transpose()
    }

    /// One of a fixed set of values, read by its name (`name` gives each value's name).
    pub fn opt_choice<T: Copy>(
        &mut self,
        key: &str,
        choices: &[T],
        name: fn(T) -> &'static str,
    ) -> Result<Option<T>, Error> {
        let Some(text) = self.opt_string(key)? else {
            return Ok(None);
        };
        choices
            .iter()
            .copied()
            .find(|&choice| name(choice) == text)
            .map(Some)
            .ok_or_else(|| {
                let names: Vec<String> = choices
                    .iter()
                    .map(|&c| format!("\"{}\"", name(c)))
                    .collect();
                Error::invalid(
                    self.path(key),
                    format!(
                        "expected one of {}, got \"{}\"",
                        names.join(", "),
                        printable(&text)
                    ),
                )
            })
    }

    /// The remaining entries, for maps keyed by name (tiers).
    pub fn into_entries(self) -> Vec<(String, String, Value)> {
        let path = self.path;
        self.map
            .into_iter()
            .map(|(k, v)| (join(&path, &k), k, v))
            .collect()
    }

    /// Refuses any key that was not read.
    pub fn finish(self, known: &[&str]) -> Result<(), Error> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(Error::invalid(
                join(&self.path, key),
                format!("unknown key; expected {}", known.join(", ")),
            )),
        }
    }
}
