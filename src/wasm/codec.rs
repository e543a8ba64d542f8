//! The codec of the boundary: records in as JSON text read by `js/codec.js` in one pass of
//! JavaScript, results out as compact bytes that the same file turns into plain objects.
//!
//! A result is written by serde, as serde_json would write it, but as tagged binary: no number
//! is printed and no text is parsed. `decodeResult` gives exactly the value `JSON.parse` would
//! give for serde_json's text (integers beyond 2^53 round as `JSON.parse` rounds them, a
//! non-finite float is `null`, a map's keys are strings). Field names are written once per
//! result and then named by index.

use serde::ser::{self, Serialize};
use wasm_bindgen::prelude::*;

use super::error::to_js;
use crate::domain::Error;

#[wasm_bindgen(module = "/js/codec.js")]
extern "C" {
    /// A caller's record as JSON text, or `undefined` when the module's own reader must read it.
    #[wasm_bindgen(js_name = encodeRecord, catch)]
    fn encode_record(value: &JsValue) -> Result<Option<String>, JsValue>;
    /// The value a result's bytes describe.
    #[wasm_bindgen(js_name = decodeResult, catch)]
    fn decode_result(bytes: &[u8]) -> Result<JsValue, JsValue>;
}

/// A caller's record as JSON text when the fast reader takes it; `None` sends it to the
/// module's own reader, which takes the same records, to the same values, and names what is
/// wrong with the others.
pub fn record_text(value: &JsValue) -> Option<String> {
    encode_record(value).ok().flatten()
}

/// A result as a plain JS value: `value` written by serde into bytes, read by `decodeResult`.
pub fn to_plain<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    // One writer is kept between results: its room and tables are reused, not allocated.
    let mut writer = SPARE.with(|spare| spare.take()).unwrap_or_default();
    writer.reset();
    let written = value.serialize(&mut writer);
    let result = match written {
        Ok(()) => decode_result(&writer.out[..writer.len]),
        Err(e) => Err(to_js(&Error::invalid(
            "result",
            format!("could not be encoded: {e}"),
        ))),
    };
    if writer.out.len() <= KEPT_MAX {
        SPARE.with(|spare| spare.set(Some(writer)));
    }
    result
}

thread_local! {
    static SPARE: std::cell::Cell<Option<Writer>> = const { std::cell::Cell::new(None) };
}

/// The largest writer kept for the next result: a rare huge result does not hold its memory.
const KEPT_MAX: usize = 1 << 20;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const STRING: u8 = 5;
const ARRAY: u8 = 6;
const OBJECT: u8 = 7;
const MAP: u8 = 8;
const DEFINE: u16 = 0xffff;
/// Names, and shapes, one result may define (`DEFINE` is not an index).
const DEFINED_MAX: usize = 0xffff;
/// Slots of the tables of names and shapes already defined (a power of two, well above what
/// a result defines: a quote defines 30 names and 7 shapes).
const SLOTS: usize = 512;

/// The bytes of one result, and the field names and object shapes it has defined.
struct Writer {
    /// The bytes so far are `out[..len]`; the rest is room, so that writing a value is a
    /// bounds check and a copy.
    out: Vec<u8>,
    len: usize,
    /// The field names of the objects being written, innermost last.
    fields: Vec<&'static str>,
    names: Table,
    shapes: Table,
    /// The keys of each defined shape, end to end (`Table` entries point into it).
    shape_keys: Vec<&'static str>,
}

impl Default for Writer {
    fn default() -> Self {
        Self {
            out: vec![0; 4096],
            len: 0,
            fields: Vec::with_capacity(64),
            names: Table::default(),
            shapes: Table::default(),
            shape_keys: Vec::with_capacity(128),
        }
    }
}

/// Open addressing on a hash: each slot is 0 (free) or one more than an index into `entries`.
struct Table {
    slots: Box<[u16; SLOTS]>,
    /// (hash, start, length) of each defined entry, by index.
    entries: Vec<(u32, u32, u32)>,
}

impl Default for Table {
    fn default() -> Self {
        Self {
            slots: Box::new([0; SLOTS]),
            entries: Vec::new(),
        }
    }
}

impl Table {
    fn reset(&mut self) {
        self.slots.fill(0);
        self.entries.clear();
    }

    /// The index of the entry `same` accepts, or the slot to define it in; `None` when the table
    /// is full (the entry is then written in full, every time).
    fn find(&self, hash: u32, same: impl Fn(u32, u32) -> bool) -> Option<Result<u16, usize>> {
        let mut slot = (hash as usize) & (SLOTS - 1);
        for _ in 0..SLOTS {
            match self.slots[slot] {
                0 => return (self.entries.len() < DEFINED_MAX).then_some(Err(slot)),
                taken => {
                    let index = taken - 1;
                    let (h, start, length) = self.entries[usize::from(index)];
                    if h == hash && same(start, length) {
                        return Some(Ok(index));
                    }
                }
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
        None
    }

    fn define(&mut self, slot: usize, hash: u32, start: u32, length: u32) {
        // `find` gave the slot only while fewer than DEFINED_MAX entries exist.
        self.entries.push((hash, start, length));
        self.slots[slot] = self.entries.len() as u16;
    }
}

fn name_hash(name: &'static str) -> u32 {
    ((name.as_ptr() as usize as u32) ^ (name.len() as u32).rotate_left(16))
        .wrapping_mul(0x9e37_79b9)
}

fn same_name(a: &'static str, b: &'static str) -> bool {
    std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()
}

#[derive(Debug)]
pub struct EncodeError(String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

type Done = Result<(), EncodeError>;

impl Writer {
    fn reset(&mut self) {
        self.len = 0;
        self.fields.clear();
        self.names.reset();
        self.shapes.reset();
        self.shape_keys.clear();
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end > self.out.len() {
            self.grow(end);
        }
        self.out[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }

    #[cold]
    fn grow(&mut self, end: usize) {
        let size = end.max(self.out.len().saturating_mul(2));
        self.out.resize(size, 0);
    }

    fn tag(&mut self, tag: u8) {
        self.put(&[tag]);
    }

    fn u16(&mut self, n: u16) {
        self.put(&n.to_le_bytes());
    }

    fn u32(&mut self, n: u32) {
        self.put(&n.to_le_bytes());
    }

    fn text(&mut self, text: &str) -> Done {
        let length = u32::try_from(text.len())
            .map_err(|_| EncodeError("a string longer than 4 GiB".to_owned()))?;
        self.u32(length);
        self.put(text.as_bytes());
        Ok(())
    }

    fn string(&mut self, text: &str) -> Done {
        self.tag(STRING);
        self.text(text)
    }

    fn int(&mut self, n: i64) {
        match i32::try_from(n) {
            Ok(small) => {
                let [a, b, c, d] = small.to_le_bytes();
                self.put(&[INT, a, b, c, d]);
            }
            // As JSON.parse reads serde_json's digits: the nearest double, ties to even.
            Err(_) => self.float(n as f64),
        }
    }

    fn float(&mut self, n: f64) {
        if n.is_finite() {
            let [a, b, c, d, e, f, g, h] = n.to_le_bytes();
            self.put(&[FLOAT, a, b, c, d, e, f, g, h]);
        } else {
            self.tag(NULL); // serde_json writes NaN and ±Infinity as null
        }
    }

    /// A count written before its items are known: patched by [`Writer::close`].
    fn open(&mut self, tag: u8) -> usize {
        self.put(&[tag, 0, 0, 0, 0]);
        self.len - 4
    }

    fn close(&mut self, at: usize, count: u32) {
        self.out[at..at + 4].copy_from_slice(&count.to_le_bytes());
    }

    /// A field name: its index once this result has defined it.
    fn name(&mut self, name: &'static str) -> Done {
        let hash = name_hash(name);
        let start = self.shape_keys.len() as u32;
        // Names are looked up by their first use's place in `shape_keys`, where `shape` put it.
        let keys = &self.shape_keys;
        match self
            .names
            .find(hash, |at, _| same_name(keys[at as usize], name))
        {
            Some(Ok(index)) => {
                self.u16(index);
                Ok(())
            }
            found => {
                if let Some(Err(slot)) = found {
                    self.shape_keys.push(name);
                    self.names.define(slot, hash, start, 1);
                }
                self.u16(DEFINE);
                self.text(name)
            }
        }
    }

    /// The shape of the object whose fields are `fields[from..]`: its index once defined.
    fn shape(&mut self, from: usize) -> Done {
        let keys = &self.fields[from..];
        let length = keys.len();
        let hash = keys.iter().fold(keys.len() as u32, |h, k| {
            (h ^ name_hash(k)).wrapping_mul(0x0100_0193)
        });
        let stored = &self.shape_keys;
        let found = self.shapes.find(hash, |start, length| {
            let (start, length) = (start as usize, length as usize);
            length == keys.len()
                && stored[start..start + length]
                    .iter()
                    .zip(keys)
                    .all(|(a, b)| same_name(a, b))
        });
        match found {
            Some(Ok(index)) => self.u16(index),
            found => {
                let count = u16::try_from(length)
                    .map_err(|_| EncodeError("an object with more than 65535 fields".to_owned()))?;
                if let Some(Err(slot)) = found {
                    let start = self.shape_keys.len() as u32;
                    self.shape_keys.extend_from_slice(&self.fields[from..]);
                    self.shapes.define(slot, hash, start, u32::from(count));
                }
                self.u16(DEFINE);
                self.u16(count);
                for index in from..self.fields.len() {
                    self.name(self.fields[index])?;
                }
            }
        }
        self.fields.truncate(from);
        Ok(())
    }

    /// A one-key object around a variant's value (`{ "Variant": … }`), opened before the value.
    fn variant(&mut self) -> usize {
        self.open(OBJECT)
    }

    fn end_variant(&mut self, at: usize, variant: &'static str) -> Done {
        self.close(at, 1);
        let from = self.fields.len();
        self.fields.push(variant);
        self.shape(from)
    }
}

/// A sequence or object being written: where its count goes and how many items it has.
pub struct Compound<'a> {
    writer: &'a mut Writer,
    at: usize,
    count: u32,
    /// For an object: where its field names start on the writer's stack.
    fields: Option<usize>,
    /// A variant's name wraps this one (`{ "Variant": … }`): that object's count, to close.
    wrapped: Option<(usize, &'static str)>,
}

impl Compound<'_> {
    fn item(&mut self) -> Done {
        self.count = self
            .count
            .checked_add(1)
            .ok_or_else(|| EncodeError("more than 2^32 items".to_owned()))?;
        Ok(())
    }

    fn end(self) -> Done {
        self.writer.close(self.at, self.count);
        if let Some(from) = self.fields {
            self.writer.shape(from)?;
        }
        match self.wrapped {
            Some((at, variant)) => self.writer.end_variant(at, variant),
            None => Ok(()),
        }
    }
}

impl<'a> Writer {
    fn compound(
        &'a mut self,
        tag: u8,
        variant: Option<&'static str>,
    ) -> Result<Compound<'a>, EncodeError> {
        let wrapped = variant.map(|name| (self.variant(), name));
        let at = self.open(tag);
        let fields = (tag == OBJECT).then_some(self.fields.len());
        Ok(Compound {
            writer: self,
            at,
            count: 0,
            fields,
            wrapped,
        })
    }
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Done {
        self.tag(if v { TRUE } else { FALSE });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Done {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Done {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Done {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Done {
        self.int(v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Done {
        match i64::try_from(v) {
            Ok(n) => self.int(n),
            Err(_) => self.float(v as f64),
        }
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Done {
        self.serialize_i64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Done {
        self.serialize_i64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Done {
        self.serialize_i64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Done {
        match i64::try_from(v) {
            Ok(n) => self.int(n),
            Err(_) => self.float(v as f64),
        }
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Done {
        match i64::try_from(v) {
            Ok(n) => self.int(n),
            Err(_) => self.float(v as f64),
        }
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Done {
        // No result holds an f32 (money is never a float). Widened exactly, where serde_json
        // would print the f32's shortest digits (0.1f32 is 0.10000000149011612 here, 0.1 there).
        self.float(f64::from(v));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Done {
        self.float(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Done {
        self.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Done {
        self.string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Done {
        // serde_json writes bytes as an array of numbers.
        let at = self.open(ARRAY);
        for byte in v {
            self.int(i64::from(*byte));
        }
        let count =
            u32::try_from(v.len()).map_err(|_| EncodeError("more than 2^32 bytes".to_owned()))?;
        self.close(at, count);
        Ok(())
    }
    fn serialize_none(self) -> Done {
        self.tag(NULL);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Done {
        self.tag(NULL);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Done {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Done {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Done {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Done {
        let outer = self.variant();
        value.serialize(&mut *self)?;
        self.end_variant(outer, variant)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, EncodeError> {
        self.compound(ARRAY, None)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>, EncodeError> {
        self.compound(ARRAY, None)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        self.compound(ARRAY, None)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        self.compound(ARRAY, Some(variant))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, EncodeError> {
        self.compound(MAP, None)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        self.compound(OBJECT, None)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        self.compound(OBJECT, Some(variant))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        self.item()?;
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Done {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Done {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Done {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Done {
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        self.item()?;
        let name = key.serialize(KeyText)?;
        self.writer.text(&name)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Done {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Done {
        self.item()?;
        self.writer.fields.push(key);
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Done {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Done {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Done {
        Compound::end(self)
    }
}

/// A map key as serde_json writes it: a string, or a number's or boolean's digits.
struct KeyText;

/// `KeyText`'s methods for keys written as their `Display` text.
macro_rules! keys_as_text {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        fn $method(self, v: $ty) -> Result<String, EncodeError> {
            Ok(v.to_string())
        }
    )*};
}

impl ser::Serializer for KeyText {
    type Ok = String;
    type Error = EncodeError;
    type SerializeSeq = ser::Impossible<String, EncodeError>;
    type SerializeTuple = ser::Impossible<String, EncodeError>;
    type SerializeTupleStruct = ser::Impossible<String, EncodeError>;
    type SerializeTupleVariant = ser::Impossible<String, EncodeError>;
    type SerializeMap = ser::Impossible<String, EncodeError>;
    type SerializeStruct = ser::Impossible<String, EncodeError>;
    type SerializeStructVariant = ser::Impossible<String, EncodeError>;

    fn serialize_str(self, v: &str) -> Result<String, EncodeError> {
        Ok(v.to_owned())
    }
    keys_as_text!(
        serialize_char: char,
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
    );
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, EncodeError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, EncodeError> {
        value.serialize(self)
    }
    fn serialize_f32(self, _: f32) -> Result<String, EncodeError> {
        Err(key_refused())
    }
    fn serialize_f64(self, _: f64) -> Result<String, EncodeError> {
        Err(key_refused())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, EncodeError> {
        Err(key_refused())
    }
    fn serialize_none(self) -> Result<String, EncodeError> {
        Err(key_refused())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, EncodeError> {
        Err(key_refused())
    }
    fn serialize_unit(self) -> Result<String, EncodeError> {
        Err(key_refused())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, EncodeError> {
        Err(key_refused())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, EncodeError> {
        Err(key_refused())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        Err(key_refused())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, EncodeError> {
        Err(key_refused())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, EncodeError> {
        Err(key_refused())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(key_refused())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        Err(key_refused())
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, EncodeError> {
        Err(key_refused())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(key_refused())
    }
}

fn key_refused() -> EncodeError {
    EncodeError("a map key must be a string or a number".to_owned())
}
