//! `google.protobuf.Struct` to and from JSON: custom fields arrive as a Struct in the event and
//! are stored, sent to CRMs and answered over gRPC as JSON.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Value as Json};

/// A Struct as a JSON object.
pub fn from_struct(fields: &Struct) -> Json {
    Json::Object(
        fields
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), from_value(value)))
            .collect(),
    )
}

fn from_value(value: &Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(|n| {
                // Whole numbers stay integers, as Chat2Desk sent them.
                if n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9e15)
                {
                    Json::from(n.as_f64().unwrap_or_default() as i64)
                } else {
                    Json::Number(n)
                }
            })
            .unwrap_or(Json::Null),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(from_value).collect()),
        Some(Kind::StructValue(fields)) => from_struct(fields),
    }
}

/// A JSON object as a Struct (anything else is an empty Struct).
pub fn to_struct(json: &Json) -> Struct {
    match json {
        Json::Object(map) => object(map),
        _ => Struct::default(),
    }
}

fn object(map: &Map<String, Json>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), to_value(value)))
            .collect(),
    }
}

fn to_value(json: &Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        Json::Object(map) => Kind::StructValue(object(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_custom_fields() {
        let json = serde_json::json!({"vip": true, "score": 7, "ratio": 0.5, "city": "São Paulo", "tags": ["a", null], "nested": {"k": 1}});
        assert_eq!(from_struct(&to_struct(&json)), json);
    }
}
