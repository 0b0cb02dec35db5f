//! A JSON document tree that keeps what `serde_json::Value` throws away.
//!
//! The spec reader needs two things `Value` cannot give it: object fields in
//! document order *with duplicates kept* (a spec that names a field twice is
//! ambiguous and must be rejected, not silently resolved to the last one),
//! and the exact kind of every number (unsigned, negative, or float) so an
//! error can say what was found. Nesting depth is bounded by serde_json's own
//! recursion limit (127 levels), so building and dropping a [`Json`] never
//! recurses deeper than that.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One JSON value. Objects are field lists in document order, duplicates kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// A non-negative integer that fits `u64`.
    UInt(u64),
    /// A negative integer that fits `i64`.
    Int(i64),
    /// Any other number (fractional, exponent, or out of integer range).
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// A short description of the value for "found ..." in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Json::Null => "null".to_string(),
            Json::Bool(b) => b.to_string(),
            Json::UInt(u) => u.to_string(),
            Json::Int(i) => i.to_string(),
            Json::Float(f) => format!("{f:?}"),
            Json::Str(s) => quote_truncated(s),
            Json::Array(items) if items.is_empty() => "an empty array".to_string(),
            Json::Array(items) => format!(
                "an array of {} element{}",
                items.len(),
                if items.len() == 1 { "" } else { "s" }
            ),
            Json::Object(fields) if fields.is_empty() => "an empty object".to_string(),
            Json::Object(_) => "an object".to_string(),
        }
    }

    /// Converts a `serde_json::Value` (whose objects cannot hold duplicates).
    pub(crate) fn from_value(value: &serde_json::Value) -> Json {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Json::UInt(u)
                } else if let Some(i) = n.as_i64() {
                    Json::Int(i)
                } else {
                    Json::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Json::Str(s.clone()),
            serde_json::Value::Array(items) => {
                Json::Array(items.iter().map(Json::from_value).collect())
            }
            serde_json::Value::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }
}

/// `s` as a JSON string literal, cut to at most 40 characters of content.
pub(crate) fn quote_truncated(s: &str) -> String {
    const KEEP: usize = 40;
    if s.chars().count() <= KEEP {
        serde_json::Value::String(s.to_string()).to_string()
    } else {
        let head: String = s.chars().take(KEEP).collect();
        let quoted = serde_json::Value::String(head).to_string();
        format!("{}...\"", &quoted[..quoted.len() - 1])
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::UInt(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(if v >= 0 {
            Json::UInt(v as u64)
        } else {
            Json::Int(v)
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            fields.push((key, value));
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn keeps_duplicates_order_and_number_kinds() {
        let doc = read(r#"{"b": 1, "a": -2, "b": 2.5, "c": 18446744073709551615}"#);
        let Json::Object(fields) = doc else { panic!() };
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "b", "c"]);
        assert_eq!(fields[0].1, Json::UInt(1));
        assert_eq!(fields[1].1, Json::Int(-2));
        assert_eq!(fields[2].1, Json::Float(2.5));
        assert_eq!(fields[3].1, Json::UInt(u64::MAX));
    }

    #[test]
    fn describes_values_for_errors() {
        assert_eq!(read("null").describe(), "null");
        assert_eq!(read("16.0").describe(), "16.0");
        assert_eq!(read("[]").describe(), "an empty array");
        assert_eq!(read("[1]").describe(), "an array of 1 element");
        assert_eq!(read("[1, 2]").describe(), "an array of 2 elements");
        assert_eq!(read("{}").describe(), "an empty object");
        assert_eq!(read(r#""a\"b""#).describe(), r#""a\"b""#);
        let long = Json::Str("x".repeat(100)).describe();
        assert_eq!(long, format!("\"{}...\"", "x".repeat(40)));
    }

    #[test]
    fn converts_from_serde_values() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"a": [1, -1, 0.5, "s", true, null]}"#).unwrap();
        assert_eq!(
            Json::from_value(&value),
            Json::Object(vec![(
                "a".into(),
                Json::Array(vec![
                    Json::UInt(1),
                    Json::Int(-1),
                    Json::Float(0.5),
                    Json::Str("s".into()),
                    Json::Bool(true),
                    Json::Null
                ])
            )])
        );
    }
}
