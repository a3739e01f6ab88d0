//! Lenient reading of the fields of one JSON object.
//!
//! Chat2Desk's documentation shows PHP `print_r` dumps, and real deliveries are as loose as
//! PHP: ids come as numbers or strings, booleans as `1`, `"1"` or `""`, an empty PHP array `[]`
//! stands for an empty object, and a lone object for a one-element list. [`Fields`] reads every
//! documented shape, and when a value fits none it records a warning and reads "absent" instead
//! of rejecting the delivery: the raw body travels with the event, so nothing is lost.

use std::cell::RefCell;

use prost_types::{Struct, Timestamp, Value};

use crate::body::{Json, Object};
use crate::json::{struct_of, value_of};
use crate::time::{parse_time_text, unix_time};

/// One JSON object and the warnings its reading produced.
pub struct Fields<'a> {
    object: &'a Object<'a>,
    /// Path of this object in the body, for warnings (`""` at the top, `"client."` inside).
    path: &'static str,
    warnings: &'a mut Vec<String>,
    /// The names asked for that the object has: what is left are fields the parser does not
    /// know ([`Fields::unread`]), the sign that Chat2Desk changed its payloads.
    asked: RefCell<Vec<&'a str>>,
}

impl<'a> Fields<'a> {
    pub fn new(object: &'a Object<'a>, warnings: &'a mut Vec<String>) -> Self {
        Fields {
            object,
            path: "",
            warnings,
            asked: RefCell::new(Vec::with_capacity(16)),
        }
    }

    /// The object under `name` (e.g. `client`), read with the same leniency.
    pub fn nested(&mut self, name: &'static str, path: &'static str) -> Option<Fields<'_>> {
        let object = self.object(name)?;
        Some(Fields {
            object,
            path,
            warnings: &mut *self.warnings,
            asked: RefCell::default(),
        })
    }

    /// Reads each object of the list under `name` (a lone object is a list of one).
    pub fn each<T>(
        &mut self,
        name: &str,
        path: &'static str,
        mut read: impl FnMut(&mut Fields<'_>) -> T,
    ) -> Vec<T> {
        self.objects(name)
            .into_iter()
            .map(|object| {
                read(&mut Fields {
                    object,
                    path,
                    warnings: &mut *self.warnings,
                    asked: RefCell::default(),
                })
            })
            .collect()
    }

    /// Every field of the object, for payloads this crate does not know.
    pub fn all(&self) -> &'a Object<'a> {
        self.object
    }

    /// Records a warning that is not about one value's type.
    pub fn warn_raw(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// Whether the body has a non-empty value under `name`.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !is_empty(v))
    }

    /// An id: a JSON integer or a string of digits. `null`, `""`, `[]` and absence are `None`.
    pub fn id(&mut self, name: &str) -> Option<i64> {
        let value = self.present(name)?;
        let id = match value {
            Json::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            }),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if id.is_none() {
            self.warn(name, "an integer id", value);
        }
        id
    }

    /// A text. Numbers are read as their digits; objects and lists as their JSON text, so that
    /// e.g. coordinates sent as `{"lat":..,"lon":..}` survive. Empty values are `None`.
    pub fn text(&mut self, name: &str) -> Option<String> {
        Some(match self.present(name)? {
            Json::String(s) => s.to_string(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            other => other.to_string(),
        })
    }

    /// A flag: `true`/`false`, `1`/`0`, `"1"`/`"0"`, `"true"`/`"false"`. `""` and `null` are
    /// `None`, because PHP writes an unset flag as an empty string.
    pub fn flag(&mut self, name: &str) -> Option<bool> {
        let value = self.present(name)?;
        let flag = match value {
            Json::Bool(b) => Some(*b),
            Json::Number(n) => match n.as_f64() {
                Some(0.0) => Some(false),
                Some(1.0) => Some(true),
                _ => None,
            },
            Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => Some(true),
                "0" | "false" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if flag.is_none() {
            self.warn(name, "a boolean", value);
        }
        flag
    }

    /// A time: ISO 8601 text in any of the spellings of [`crate::time`], or unix seconds as a
    /// number or a string of digits.
    pub fn time(&mut self, name: &str) -> Option<Timestamp> {
        let value = self.present(name)?;
        let time = match value {
            Json::Number(n) => n.as_f64().and_then(unix_time),
            Json::String(s) => parse_time_text(s),
            _ => None,
        };
        if time.is_none() {
            self.warn(name, "a time (ISO 8601 or unix seconds)", value);
        }
        time
    }

    /// An object. PHP's empty array `[]` is an empty object, read as `None`.
    pub fn object(&mut self, name: &str) -> Option<&'a Object<'a>> {
        match self.get(name)? {
            Json::Object(map) => Some(map),
            value if is_empty(value) => None,
            value => {
                self.warn(name, "an object", value);
                None
            }
        }
    }

    /// A list of objects. A lone object is a list of one; members that are not objects are
    /// skipped with a warning.
    pub fn objects(&mut self, name: &str) -> Vec<&'a Object<'a>> {
        match self.get(name) {
            Some(Json::Object(map)) => vec![map],
            Some(Json::Array(items)) => items
                .iter()
                .filter_map(|item| match item {
                    Json::Object(map) => Some(map),
                    other => {
                        self.warn(name, "a list of objects", other);
                        None
                    }
                })
                .collect(),
            Some(value) if !is_empty(value) => {
                self.warn(name, "a list of objects", value);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// A list of texts. A lone text is a list of one.
    pub fn texts(&mut self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(Json::Array(items)) => items
                .iter()
                .filter(|item| !is_empty(item))
                .map(|item| match item {
                    Json::String(s) => s.to_string(),
                    other => other.to_string(),
                })
                .collect(),
            Some(Json::String(s)) if !s.is_empty() => vec![s.to_string()],
            Some(value) if !is_empty(value) => {
                self.warn(name, "a list of texts", value);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Any JSON as a protobuf `Struct`. A PHP list (`["a","b"]`) becomes an object keyed by
    /// position, as PHP itself sees it; empty values are `None`.
    pub fn structure(&mut self, name: &str) -> Option<Struct> {
        match self.present(name)? {
            Json::Object(map) => Some(struct_of(map)),
            Json::Array(items) => Some(Struct {
                fields: items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (i.to_string(), value_of(item)))
                    .collect(),
            }),
            other => {
                self.warn(name, "an object", other);
                None
            }
        }
    }

    /// A list of arbitrary JSON values, e.g. attachments. A lone value is a list of one.
    pub fn values(&mut self, name: &str) -> Vec<Value> {
        match self.present(name) {
            Some(Json::Array(items)) => items.iter().map(value_of).collect(),
            Some(other) => vec![value_of(other)],
            None => Vec::new(),
        }
    }

    /// The value under `name` unless it is absent or empty (`null`, `""`, `[]`, `{}`).
    fn present(&self, name: &str) -> Option<&'a Json<'a>> {
        self.get(name).filter(|v| !is_empty(v))
    }

    /// The value under `name`, noting that the parser knows the field.
    fn get(&self, name: &str) -> Option<&'a Json<'a>> {
        let (key, value) = self.object.get_key_value(name)?;
        self.asked.borrow_mut().push(key);
        Some(value)
    }

    /// The fields of this object that nothing has asked for: ones the parser does not know
    /// (empty values aside, which carry nothing).
    pub fn unread(&self) -> Vec<String> {
        let asked = self.asked.borrow();
        self.object
            .iter()
            .filter(|(name, value)| !is_empty(value) && !asked.contains(name))
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    fn warn(&mut self, name: &str, expected: &str, got: &Json<'_>) {
        let mut shown = got.to_string();
        if shown.len() > 64 {
            let cut = (0..=61)
                .rev()
                .find(|&i| shown.is_char_boundary(i))
                .unwrap_or(0);
            shown.truncate(cut);
            shown.push_str("...");
        }
        self.warnings.push(format!(
            "{}{name}: expected {expected}, got {shown}",
            self.path
        ));
    }
}

/// Whether a JSON value is one of the ways Chat2Desk says "nothing".
fn is_empty(value: &Json<'_>) -> bool {
    match value {
        Json::Null => true,
        Json::String(s) => s.trim().is_empty(),
        Json::Array(items) => items.is_empty(),
        Json::Object(map) => map.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::value::Kind;
    use serde_json::json;

    fn read<T>(body: serde_json::Value, f: impl FnOnce(&mut Fields<'_>) -> T) -> (T, Vec<String>) {
        let text = body.to_string();
        let Ok(Json::Object(object)) = serde_json::from_str(&text) else {
            panic!("{text} is an object")
        };
        let mut warnings = Vec::new();
        let value = f(&mut Fields::new(&object, &mut warnings));
        (value, warnings)
    }

    #[test]
    fn ids_come_as_numbers_or_digit_strings() {
        let body = json!({"a": 17, "b": "17", "c": " 17 ", "d": 17.0, "e": null, "f": "", "g": []});
        let (ids, warnings) = read(body, |f| {
            ["a", "b", "c", "d", "e", "f", "g", "missing"].map(|n| f.id(n))
        });
        assert_eq!(
            ids,
            [
                Some(17),
                Some(17),
                Some(17),
                Some(17),
                None,
                None,
                None,
                None
            ]
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn an_id_that_is_no_number_is_absent_with_a_warning() {
        let (id, warnings) = read(json!({"message_id": "abc"}), |f| f.id("message_id"));
        assert_eq!(id, None);
        assert_eq!(
            warnings,
            ["message_id: expected an integer id, got \"abc\""]
        );
    }

    #[test]
    fn flags_in_every_php_spelling() {
        let body =
            json!({"a": 1, "b": "1", "c": true, "d": 0, "e": "0", "f": false, "g": "", "h": null});
        let (flags, warnings) = read(body, |f| {
            ["a", "b", "c", "d", "e", "f", "g", "h"].map(|n| f.flag(n))
        });
        assert_eq!(
            flags,
            [
                Some(true),
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                Some(false),
                None,
                None
            ]
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn php_empty_array_is_no_object_and_a_lone_object_is_a_list() {
        let body = json!({"extra_data": [], "channels": {"id": 1}, "list": [{"id": 2}, {"id": 3}]});
        let ((extra, lone, list), warnings) = read(body, |f| {
            (
                f.object("extra_data").is_none(),
                f.objects("channels").len(),
                f.objects("list").len(),
            )
        });
        assert!(extra);
        assert_eq!((lone, list), (1, 2));
        assert!(warnings.is_empty());
    }

    #[test]
    fn texts_keep_unicode_and_read_numbers_as_digits() {
        let body = json!({"text": "Olá, привет 👋", "phone": 339002538473_i64, "empty": ""});
        let ((text, phone, empty), _) =
            read(body, |f| (f.text("text"), f.text("phone"), f.text("empty")));
        assert_eq!(text.as_deref(), Some("Olá, привет 👋"));
        assert_eq!(phone.as_deref(), Some("339002538473"));
        assert_eq!(empty, None);
    }

    #[test]
    fn structures_accept_objects_and_php_lists() {
        let body = json!({"custom_fields": {"vip": true, "n": 2}, "list": ["x"]});
        let ((object, list), _) = read(body, |f| {
            (f.structure("custom_fields"), f.structure("list"))
        });
        let object = object.unwrap();
        assert_eq!(object.fields["vip"].kind, Some(Kind::BoolValue(true)));
        assert_eq!(object.fields["n"].kind, Some(Kind::NumberValue(2.0)));
        assert_eq!(
            list.unwrap().fields["0"].kind,
            Some(Kind::StringValue("x".into()))
        );
    }

    #[test]
    fn long_values_are_cut_in_warnings_on_a_char_boundary() {
        let (_, warnings) = read(json!({"id": "я".repeat(100)}), |f| f.id("id"));
        assert!(warnings[0].ends_with("...") && warnings[0].len() < 120);
    }
}
