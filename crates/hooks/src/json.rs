//! JSON and `google.protobuf.Struct`, both ways. Webhook bodies' free-form objects (custom
//! fields, extra data) enter the event as a Struct here; consumers that store, send or show
//! them as JSON again (crm-sync's directory, its connectors and CrmService) turn them back
//! with the inverse written beside it, so that the two directions cannot disagree on numbers
//! or nulls.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Value as Json};

use crate::body::{self, Object};

/// A JSON object as a protobuf `Struct`.
pub fn to_struct(map: &Map<String, Json>) -> Struct {
    struct_of(&Object::from(map))
}

/// A JSON value as a protobuf `Value`. Numbers become doubles, as protobuf's JSON mapping
/// does; exact big integers stay readable in the event's raw body.
pub fn to_value(json: &Json) -> Value {
    value_of(&body::Json::from(json))
}

/// A body's object as a protobuf `Struct`: what [`to_struct`] does, for the parser.
pub(crate) fn struct_of(object: &Object<'_>) -> Struct {
    Struct {
        fields: object
            .iter()
            .map(|(key, value)| (key.to_owned(), value_of(value)))
            .collect(),
    }
}

/// A body's value as a protobuf `Value`, as [`to_value`].
pub(crate) fn value_of(json: &body::Json<'_>) -> Value {
    let kind = match json {
        body::Json::Null => Kind::NullValue(0),
        body::Json::Bool(b) => Kind::BoolValue(*b),
        body::Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        body::Json::String(s) => Kind::StringValue(s.to_string()),
        body::Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(value_of).collect(),
        }),
        body::Json::Object(object) => Kind::StructValue(struct_of(object)),
    };
    Value { kind: Some(kind) }
}

/// A `Struct` as a JSON object: what [`to_struct`] made, with whole numbers back as integers.
pub fn from_struct(fields: &Struct) -> Json {
    Json::Object(
        fields
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), from_value(value)))
            .collect(),
    )
}

/// A protobuf `Value` as JSON. A number that is not finite (JSON has none) is null.
pub fn from_value(value: &Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(from_value).collect()),
        Some(Kind::StructValue(fields)) => from_struct(fields),
    }
}

/// Whole numbers stay integers, as Chat2Desk sent them (a client id of 7 is not `7.0` in a
/// CRM), as long as a double holds them exactly.
fn number(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_custom_fields() {
        let json = json!({"vip": true, "score": 7, "ratio": 0.5, "city": "São Paulo", "tags": ["a", null], "nested": {"k": 1}, "big": 1e300});
        let Json::Object(map) = &json else {
            unreachable!()
        };
        assert_eq!(from_struct(&to_struct(map)), json);
    }

    #[test]
    fn numbers_are_doubles_in_the_struct_and_whole_ones_integers_again() {
        assert_eq!(to_value(&json!(7)).kind, Some(Kind::NumberValue(7.0)));
        assert_eq!(from_value(&to_value(&json!(7))), json!(7));
        assert_eq!(from_value(&to_value(&json!(-2.5))), json!(-2.5));
        // Past 2^53 a double is not exact: kept as the double it is.
        assert_eq!(
            from_value(&Value {
                kind: Some(Kind::NumberValue(1e16))
            }),
            json!(1e16)
        );
        for n in [f64::NAN, f64::INFINITY] {
            assert_eq!(
                from_value(&Value {
                    kind: Some(Kind::NumberValue(n))
                }),
                Json::Null
            );
        }
        assert_eq!(from_value(&Value { kind: None }), Json::Null);
    }
}
