//! Fields of the state file that this build does not know — written by a newer okta-spot-sync,
//! at the top level or in a user's entry — survive a load and a save unchanged, so running an
//! older binary for a while (a downgrade, a rollback) loses none of the newer one's data.
//!
//! It owns how [`Ledger`] maps to and from JSON: the fields this build knows go through the
//! types' own serde code, and everything else is kept as JSON values in
//! [`Ledger::unknown`] and [`Ledger::unknown_in_users`]. It must not interpret those values.
//!
//! An entry's unknown fields are captured while its known fields are parsed (one pass, no
//! intermediate tree): the state file is 18 MB at 100,000 users and is loaded every cycle.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{is_zero, DeleteMark, EventsState, LastRun, Ledger, LedgerEntry};
use crate::model::OktaUserId;

/// Unknown JSON fields, by name.
pub type Unknown = Map<String, Value>;

/// The file as written: the ledger's fields by reference.
#[derive(Serialize)]
struct LedgerOut<'a> {
    version: u32,
    users: UsersOut<'a>,
    last_run: &'a Option<LastRun>,
    #[serde(skip_serializing_if = "is_zero")]
    journal_seq: u64,
    #[serde(skip_serializing_if = "EventsState::is_empty")]
    events: &'a EventsState,
    #[serde(skip_serializing_if = "<[DeleteMark]>::is_empty")]
    recent_deletes: &'a [DeleteMark],
    #[serde(flatten)]
    unknown: &'a Unknown,
}

struct UsersOut<'a> {
    users: &'a BTreeMap<OktaUserId, LedgerEntry>,
    unknown: &'a BTreeMap<OktaUserId, Unknown>,
}

/// An entry as written: as it is, or with the unknown fields it was read with.
#[derive(Serialize)]
#[serde(untagged)]
enum EntryOut<'a> {
    Known(&'a LedgerEntry),
    WithUnknown {
        #[serde(flatten)]
        entry: &'a LedgerEntry,
        #[serde(flatten)]
        unknown: &'a Unknown,
    },
}

impl Serialize for UsersOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.users.iter().map(|(id, entry)| {
            let out = match self.unknown.get(id).filter(|u| !u.is_empty()) {
                Some(unknown) => EntryOut::WithUnknown { entry, unknown },
                None => EntryOut::Known(entry),
            };
            (id, out)
        }))
    }
}

impl Serialize for Ledger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Every field, so that a new one cannot be forgotten here.
        let Ledger {
            version,
            users,
            last_run,
            journal_seq,
            events,
            recent_deletes,
            unknown,
            unknown_in_users,
        } = self;
        LedgerOut {
            version: *version,
            users: UsersOut {
                users,
                unknown: unknown_in_users,
            },
            last_run,
            journal_seq: *journal_seq,
            events,
            recent_deletes,
            unknown,
        }
        .serialize(s)
    }
}

/// The file as read.
#[derive(Deserialize)]
struct LedgerIn {
    version: u32,
    users: BTreeMap<OktaUserId, WithUnknown<LedgerEntry>>,
    last_run: Option<LastRun>,
    #[serde(default)]
    journal_seq: u64,
    #[serde(default)]
    events: EventsState,
    #[serde(default)]
    recent_deletes: Vec<DeleteMark>,
    #[serde(flatten)]
    unknown: Unknown,
}

impl<'de> Deserialize<'de> for Ledger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let file = LedgerIn::deserialize(d)?;
        let mut unknown_in_users = BTreeMap::new();
        let users = file
            .users
            .into_iter()
            .map(|(id, entry)| {
                if !entry.unknown.is_empty() {
                    unknown_in_users.insert(id.clone(), entry.unknown);
                }
                (id, entry.known)
            })
            .collect();
        Ok(Ledger {
            version: file.version,
            users,
            last_run: file.last_run,
            journal_seq: file.journal_seq,
            events: file.events,
            recent_deletes: file.recent_deletes,
            unknown: file.unknown,
            unknown_in_users,
        })
    }
}

/// A struct `T` parsed by its own `Deserialize`, plus the fields of its JSON object that `T`
/// does not name.
struct WithUnknown<T> {
    known: T,
    unknown: Unknown,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for WithUnknown<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut unknown = Unknown::new();
        let known = T::deserialize(Capturing {
            inner: d,
            unknown: &mut unknown,
        })?;
        Ok(WithUnknown { known, unknown })
    }
}

/// A deserializer that hands a struct's visitor only the keys the struct names (its
/// `fields`, which derived code passes to `deserialize_struct`) and keeps the others.
struct Capturing<'u, D> {
    inner: D,
    unknown: &'u mut Unknown,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Capturing<'_, D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            CapturingVisitor {
                visitor,
                fields,
                unknown: self.unknown,
            },
        )
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct CapturingVisitor<'u, V> {
    visitor: V,
    fields: &'static [&'static str],
    unknown: &'u mut Unknown,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for CapturingVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(CapturingMap {
            map,
            fields: self.fields,
            unknown: self.unknown,
        })
    }
}

struct CapturingMap<'u, A> {
    map: A,
    fields: &'static [&'static str],
    unknown: &'u mut Unknown,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CapturingMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            match self.map.next_key_seed(KeySeed(self.fields))? {
                None => return Ok(None),
                Some(Key::Known(name)) => {
                    let name: de::value::StrDeserializer<'_, A::Error> = name.into_deserializer();
                    return seed.deserialize(name).map(Some);
                }
                Some(Key::Unknown(name)) => {
                    let value: Value = self.map.next_value()?;
                    self.unknown.insert(name, value);
                }
            }
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// A key: one of the struct's field names (no allocation), or another.
enum Key {
    Known(&'static str),
    Unknown(String),
}

#[derive(Clone, Copy)]
struct KeySeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match self.0.iter().find(|field| **field == key) {
            Some(field) => Key::Known(field),
            None => Key::Unknown(key.to_owned()),
        })
    }
}
