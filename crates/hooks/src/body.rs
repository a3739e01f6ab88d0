//! A delivery's JSON, read borrowing from the request body.
//!
//! The gateway reads every webhook body once, for the typed event and for the event id. Read
//! into `serde_json::Value`, each key and each text became an allocation of its own and each
//! object a B-tree, to be looked up a few times and dropped: the largest part of the gateway's
//! own work per request. Here keys and texts borrow from the body (only a text with escapes is
//! copied), and an object is a vector of its fields sorted by key, which is how serde_json's
//! map kept them: a lookup is a binary search, the event id's canonical form writes the fields
//! in the order they are in, and a key given twice keeps its last value, as it did.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Number;

/// One JSON value of a body.
#[derive(Clone, Debug, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object: its fields sorted by key, each key once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    fields: Vec<(Cow<'a, str>, Json<'a>)>,
}

impl<'a> Object<'a> {
    /// The field `name`, with the key as the body spells it.
    pub fn get_key_value(&self, name: &str) -> Option<(&str, &Json<'a>)> {
        let at = self
            .fields
            .binary_search_by(|(key, _)| key.as_ref().cmp(name))
            .ok()?;
        let (key, value) = &self.fields[at];
        Some((key, value))
    }

    /// The fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.fields.iter().map(|(key, value)| (key.as_ref(), value))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(key, _)| key.as_ref())
    }

    /// Whether the object has no fields (`{}`), one of the ways Chat2Desk says "nothing".
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// An object of `fields` in any order: sorted by key, and of a key given twice the last.
    fn from_fields(mut fields: Vec<(Cow<'a, str>, Json<'a>)>) -> Self {
        // Stable, so equal keys stay in body order; `dedup_by` compares each with the one kept
        // before it, which takes the later value.
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        fields.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        Object { fields }
    }
}

/// A `serde_json::Value` seen as a body's JSON, borrowing its texts: for ids and structs of
/// values that were built rather than received (the simulator's deliveries, CRM fields).
impl<'a> From<&'a serde_json::Value> for Json<'a> {
    fn from(value: &'a serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Json::Null,
            Value::Bool(value) => Json::Bool(*value),
            Value::Number(number) => Json::Number(number.clone()),
            Value::String(text) => Json::String(Cow::Borrowed(text)),
            Value::Array(items) => Json::Array(items.iter().map(Json::from).collect()),
            Value::Object(map) => Json::Object(Object::from(map)),
        }
    }
}

impl<'a> From<&'a serde_json::Map<String, serde_json::Value>> for Object<'a> {
    fn from(map: &'a serde_json::Map<String, serde_json::Value>) -> Self {
        Object::from_fields(
            map.iter()
                .map(|(key, value)| (Cow::Borrowed(key.as_str()), Json::from(value)))
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json<'de>, E> {
        // As serde_json's own Value: a number beyond a double is null.
        Ok(Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(Key(key)) = map.next_key()? {
            fields.push((key, map.next_value()?));
        }
        Ok(Json::Object(Object::from_fields(fields)))
    }
}

/// An object's key, borrowed from the body unless it has escapes. (serde's own `Cow<str>`
/// always copies.)
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }

            fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Compact JSON, objects in key order: what `serde_json::Value` wrote for the same body, and
/// so the event id's canonical form.
impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(value) => serializer.serialize_bool(*value),
            Json::Number(number) => number.serialize(serializer),
            Json::String(text) => serializer.serialize_str(text),
            Json::Array(items) => serializer.collect_seq(items),
            Json::Object(object) => {
                let mut map = serializer.serialize_map(Some(object.fields.len()))?;
                for (key, value) in object.iter() {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// The compact JSON text, for a value shown in a warning or kept as text.
impl fmt::Display for Json<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        formatter.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Json<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn texts_without_escapes_borrow_from_the_body() {
        let Json::Object(object) = read(r#"{"text":"plain","escaped":"a\"b"}"#) else {
            panic!("an object")
        };
        let text = |name| match object.get_key_value(name) {
            Some((_, Json::String(text))) => text.clone(),
            other => panic!("{other:?}"),
        };
        assert!(matches!(text("text"), Cow::Borrowed("plain")));
        assert!(matches!(text("escaped"), Cow::Owned(ref s) if s == "a\"b"));
    }

    #[test]
    fn keys_are_sorted_and_the_last_of_a_repeated_key_wins() {
        let json = read(r#"{"b":1,"a":2,"b":3,"c":{"z":[],"y":null}}"#);
        let Json::Object(object) = &json else {
            panic!("an object")
        };
        assert_eq!(object.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        // As serde_json's Value read the same body, and wrote it.
        let value: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":2,"b":3,"c":{"z":[],"y":null}}"#).unwrap();
        assert_eq!(json.to_string(), value.to_string());
        assert_eq!(json.to_string(), r#"{"a":2,"b":3,"c":{"y":null,"z":[]}}"#);
    }

    #[test]
    fn numbers_are_written_as_serde_json_wrote_them() {
        let text = r#"[0,-2,3.5,1e300,18446744073709551615,-9223372036854775808,1.0,2e-7]"#;
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(read(text).to_string(), value.to_string());
    }
}
