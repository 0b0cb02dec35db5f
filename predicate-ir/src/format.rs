//! Spec formats v1 and v2: reading (with validation) and canonical writing.
//!
//! Version 1 is the per-packet format. Version 2 adds a required `"mode"`:
//! `"packet"` (the v1 meaning) or `"stream"` (the predicate judges each TCP
//! connection's byte stream; optionally through `"view"`, see
//! [`crate::spec::StreamView`]). A stream spec is read only if its
//! predicates pass [`crate::stream::check_stream_safe`]: otherwise the
//! error names the offending construct's path. Packet-mode specs are always
//! written as version 1, so the canonical output of v1 files is unchanged.
//!
//! [`parse`] turns spec text into a [`Spec`] that upholds every invariant
//! listed in [`crate::spec`], or fails with one [`SpecError`] naming the JSON
//! path of the first problem (`$.predicate.args[1].window.end`), what was
//! expected there and what was found. It never panics and never recurses
//! deeper than [`MAX_PRED_DEPTH`] predicate levels (serde_json bounds the raw
//! JSON nesting at 127 levels before we see it).
//!
//! [`Spec::to_json`] writes the canonical form: every field present, byte
//! classes as sorted, merged `[lo, hi]` range arrays (named classes
//! expanded). `parse(x).to_json()` re-parses to the same spec, and for a
//! canonical file it equals the file's JSON value.
//!
//! docs/spec-format.md is the user-facing description of the format.

use crate::json::{quote_truncated, Json};
use crate::spec::{
    Action, ByteClass, Cmp, Mode, Pattern, Policy, Pred, Spec, StreamView, Window, FORMAT_VERSION,
    FORMAT_VERSION_STREAM, MAX_DEPTH, MAX_NAME_LEN, MAX_OFFSET, MAX_PATTERN_LEN, MAX_PRED_DEPTH,
    MAX_SPEC_BYTES,
};
use crate::stream::check_stream_safe;
use serde_json::{json, Map, Value};

/// A spec that could not be read. `Display` renders one line:
/// `<json path>: <what is wrong>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct SpecError {
    /// JSON path of the offending value, `$` for the whole document.
    pub path: String,
    /// What is wrong there.
    pub kind: SpecErrorKind,
}

/// What is wrong with a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecErrorKind {
    #[error("spec is {size} bytes; the limit is {limit} bytes")]
    /// The file is larger than [`MAX_SPEC_BYTES`].
    TooLarge {
        /// Size of the input, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    #[error("malformed JSON at line {line} column {column}: {message}")]
    /// The input is not JSON.
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The JSON parser's description.
        message: String,
    },
    #[error(
        "JSON nested too deeply at line {line} column {column} (more than 127 levels of arrays and objects)"
    )]
    /// Arrays and objects nest deeper than the JSON reader allows.
    JsonTooDeep {
        /// 1-based line where the limit was crossed.
        line: usize,
        /// 1-based column where the limit was crossed.
        column: usize,
    },
    #[error("predicate nested more than {limit} levels deep")]
    /// Predicates nest deeper than [`MAX_PRED_DEPTH`].
    PredicateTooDeep {
        /// The nesting limit.
        limit: usize,
    },
    #[error("unsupported spec format version {found}; this lagic reads versions 1 and 2")]
    /// `version` is neither 1 nor 2.
    UnsupportedVersion {
        /// The version found, as written.
        found: String,
    },
    #[error("expected {expected}, found {found}")]
    /// A value of the wrong type or out of range.
    Expected {
        /// What the format allows here.
        expected: String,
        /// What the file has, abbreviated.
        found: String,
    },
    #[error("missing field: expected {expected}, found nothing")]
    /// A required field is absent.
    MissingField {
        /// The field and what it should hold.
        expected: String,
    },
    #[error("unknown field {field}; expected one of {allowed}")]
    /// A field the format does not define at this level.
    UnknownField {
        /// The unknown field's name.
        field: String,
        /// The fields allowed here.
        allowed: String,
    },
    #[error("duplicate field {field}")]
    /// A field given twice in one object.
    DuplicateField {
        /// The repeated field's name.
        field: String,
    },
    #[error("unknown op {found}; expected one of {allowed}")]
    /// An `op` the format does not define.
    UnknownOp {
        /// The op found.
        found: String,
        /// The ops allowed.
        allowed: String,
    },
    #[error("window end before start (end {end} < start {start})")]
    /// A window whose end is before its start.
    WindowEndBeforeStart {
        /// The window's start.
        start: u32,
        /// The window's end.
        end: u32,
    },
    #[error("not allowed in a stream spec: {reason}")]
    /// A stream spec's predicate that is not known to be prefix-closed
    /// ([`crate::stream::check_stream_safe`]).
    NotStreamSafe {
        /// Why it can judge a prefix differently from the whole stream.
        reason: String,
    },
    #[error("a stream spec with a view has no top-level predicate: the view holds the predicates")]
    /// Both `view` and `predicate` at the top of a v2 spec.
    ViewAndPredicate,
    #[error("byte range [{lo}, {hi}] has lo above hi")]
    /// A byte range `[lo, hi]` with `lo > hi`.
    ReversedRange {
        /// The range's first byte.
        lo: u8,
        /// The range's last byte.
        hi: u8,
    },
}

/// Every predicate op, in the order the docs list them.
pub const OPS: [&str; 12] = [
    "true", "false", "not", "and", "or", "len", "byte", "all", "any", "prefix", "contains",
    "depth_le",
];

/// Reads and validates spec text (format v1 or v2).
pub fn parse(text: &str) -> Result<Spec, SpecError> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(err(
            "$",
            SpecErrorKind::TooLarge {
                size: text.len(),
                limit: MAX_SPEC_BYTES,
            },
        ));
    }
    let doc: Json = serde_json::from_str(text).map_err(from_serde)?;
    spec_from(&doc)
}

impl Spec {
    /// Reads and validates an already-parsed JSON value (format v1 or v2).
    /// Same checks as [`parse`], except duplicate fields, which a
    /// `serde_json::Value` has already merged.
    pub fn from_json(value: &Value) -> Result<Spec, SpecError> {
        spec_from(&Json::from_value(value))
    }

    /// The canonical JSON form: all fields, ranges sorted and merged.
    /// Packet-mode specs are written as version 1 (no `mode`), stream specs
    /// as version 2.
    pub fn to_json(&self) -> Value {
        let mut top = Map::new();
        top.insert("name".into(), json!(self.name));
        top.insert("description".into(), json!(self.description));
        top.insert("policy".into(), self.policy.to_json());
        match &self.mode {
            Mode::Packet => {
                top.insert("version".into(), json!(FORMAT_VERSION));
                top.insert("predicate".into(), self.predicate.to_json());
            }
            Mode::Stream(view) => {
                top.insert("version".into(), json!(FORMAT_VERSION_STREAM));
                top.insert("mode".into(), json!("stream"));
                match view {
                    StreamView::Whole => {
                        top.insert("predicate".into(), self.predicate.to_json());
                    }
                    StreamView::HttpResponse { headers } => {
                        top.insert(
                            "view".into(),
                            json!({"http_response": {
                                "headers": headers.to_json(),
                                "body": self.predicate.to_json(),
                            }}),
                        );
                    }
                }
            }
        }
        Value::Object(top)
    }

    /// The canonical form as pretty-printed text with a final newline.
    pub fn to_json_string(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.to_json())
            .expect("a serde_json::Value always serializes");
        text.push('\n');
        text
    }
}

impl Policy {
    /// The canonical `policy` object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("arp".into(), json!(self.arp.keyword()));
        m.insert("ipv6_nd".into(), json!(self.ipv6_nd.keyword()));
        m.insert("other_ip".into(), json!(self.other_ip.keyword()));
        m.insert("non_ip".into(), json!(self.non_ip.keyword()));
        Value::Object(m)
    }
}

impl Action {
    /// The action as written in spec JSON: `"pass"` or `"drop"`.
    pub fn keyword(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
        }
    }
}

impl ByteClass {
    /// The canonical form: an array of `[lo, hi]` ranges.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.ranges()
                .iter()
                .map(|&(lo, hi)| json!([lo, hi]))
                .collect(),
        )
    }
}

impl Window {
    /// `{"start": a, "end": b | null}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("start".into(), json!(self.start));
        m.insert("end".into(), json!(self.end));
        Value::Object(m)
    }
}

fn pattern_to_json(pattern: &Pattern) -> Value {
    Value::Array(pattern.iter().map(ByteClass::to_json).collect())
}

impl Pred {
    /// The canonical JSON form of this predicate.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        match self {
            Pred::True => put("op", json!("true")),
            Pred::False => put("op", json!("false")),
            Pred::Not(p) => {
                put("op", json!("not"));
                put("arg", p.to_json());
            }
            Pred::And(ps) | Pred::Or(ps) => {
                let op = if matches!(self, Pred::And(_)) {
                    "and"
                } else {
                    "or"
                };
                put("op", json!(op));
                put("args", Value::Array(ps.iter().map(Pred::to_json).collect()));
            }
            Pred::Len { cmp, value } => {
                put("op", json!("len"));
                put("cmp", json!(cmp.symbol()));
                put("value", json!(value));
            }
            Pred::Byte { index, class } => {
                put("op", json!("byte"));
                put("index", json!(index));
                put("class", class.to_json());
            }
            Pred::All { window, class } | Pred::Any { window, class } => {
                let op = if matches!(self, Pred::All { .. }) {
                    "all"
                } else {
                    "any"
                };
                put("op", json!(op));
                put("window", window.to_json());
                put("class", class.to_json());
            }
            Pred::Prefix { pattern } => {
                put("op", json!("prefix"));
                put("pattern", pattern_to_json(pattern));
            }
            Pred::Contains { window, pattern } => {
                put("op", json!("contains"));
                put("window", window.to_json());
                put("pattern", pattern_to_json(pattern));
            }
            Pred::DepthLe {
                window,
                max,
                open,
                close,
                strings,
            } => {
                put("op", json!("depth_le"));
                put("window", window.to_json());
                put("max", json!(max));
                put("open", open.to_json());
                put("close", close.to_json());
                put("strings", json!(strings));
            }
        }
        Value::Object(m)
    }
}

/// True when `name` is a valid diode name: `[A-Za-z_][A-Za-z0-9_]{0,62}`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

// ---------------------------------------------------------------------------
// Reading.

const CMP_EXPECTED: &str = r#"one of "<", "<=", "==", "!=", ">=", ">""#;
const CLASS_EXPECTED: &str =
    r#"a byte class: an array of [lo, hi] ranges, or one of "printable", "text", "any""#;

fn err(path: &str, kind: SpecErrorKind) -> SpecError {
    SpecError {
        path: path.to_string(),
        kind,
    }
}

fn expected(path: &str, what: &str, found: &Json) -> SpecError {
    err(
        path,
        SpecErrorKind::Expected {
            expected: what.to_string(),
            found: found.describe(),
        },
    )
}

fn from_serde(e: serde_json::Error) -> SpecError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    let kind = if message == "recursion limit exceeded" {
        SpecErrorKind::JsonTooDeep { line, column }
    } else {
        SpecErrorKind::Syntax {
            line,
            column,
            message,
        }
    };
    err("$", kind)
}

/// `base.key`, or `base["key"]` when the key is not a plain identifier.
fn field_path(base: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{base}.{key}")
    } else {
        format!("{base}[{}]", quote_truncated(key))
    }
}

fn index_path(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An object's fields, checked for duplicates and unknown names.
struct Obj<'a> {
    path: &'a str,
    fields: &'a [(String, Json)],
}

impl<'a> Obj<'a> {
    /// Checks that `v` is an object without duplicate fields.
    fn new(v: &'a Json, path: &'a str, what: &str) -> Result<Obj<'a>, SpecError> {
        let Json::Object(fields) = v else {
            return Err(expected(path, what, v));
        };
        // A hash set: a hostile spec may hold one object with 100,000s of fields.
        let mut seen = std::collections::HashSet::with_capacity(fields.len());
        for (key, _) in fields {
            if !seen.insert(key.as_str()) {
                return Err(err(
                    &field_path(path, key),
                    SpecErrorKind::DuplicateField {
                        field: quote_truncated(key),
                    },
                ));
            }
        }
        Ok(Obj { path, fields })
    }

    fn only(&self, allowed: &[&str]) -> Result<(), SpecError> {
        match self
            .fields
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            Some((key, _)) => Err(err(
                &field_path(self.path, key),
                SpecErrorKind::UnknownField {
                    field: quote_truncated(key),
                    allowed: list(allowed),
                },
            )),
            None => Ok(()),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Json> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn req(&self, key: &str, what: &str) -> Result<&'a Json, SpecError> {
        self.get(key).ok_or_else(|| {
            err(
                &field_path(self.path, key),
                SpecErrorKind::MissingField {
                    expected: what.to_string(),
                },
            )
        })
    }

    fn at(&self, key: &str) -> String {
        field_path(self.path, key)
    }
}

fn spec_from(doc: &Json) -> Result<Spec, SpecError> {
    let top = Obj::new(doc, "$", "a spec object")?;
    let version_what = "the spec format version (the integer 1 or 2)";
    let version = match top.req("version", version_what)? {
        Json::UInt(v @ (1 | 2)) => *v,
        Json::UInt(v) => {
            return Err(err(
                &top.at("version"),
                SpecErrorKind::UnsupportedVersion {
                    found: v.to_string(),
                },
            ))
        }
        Json::Int(v) => {
            return Err(err(
                &top.at("version"),
                SpecErrorKind::UnsupportedVersion {
                    found: v.to_string(),
                },
            ))
        }
        other => return Err(expected(&top.at("version"), version_what, other)),
    };
    if version == FORMAT_VERSION {
        top.only(&["version", "name", "description", "policy", "predicate"])?;
    } else {
        top.only(&[
            "version",
            "name",
            "description",
            "policy",
            "mode",
            "predicate",
            "view",
        ])?;
    }

    let name_what = "a name matching [A-Za-z_][A-Za-z0-9_]{0,62}";
    let name = match top.req("name", name_what)? {
        Json::Str(s) if is_valid_name(s) => s.clone(),
        other => return Err(expected(&top.at("name"), name_what, other)),
    };
    let description = match top.get("description") {
        None => String::new(),
        Some(Json::Str(s)) => s.clone(),
        Some(other) => return Err(expected(&top.at("description"), "a string", other)),
    };
    let policy = match top.get("policy") {
        None => Policy::default(),
        Some(v) => policy_from(v, &top.at("policy"))?,
    };
    let (mode, predicate) = if version == FORMAT_VERSION {
        (Mode::Packet, top_predicate(&top)?)
    } else {
        mode_and_predicate(&top)?
    };
    Ok(Spec {
        name,
        description,
        policy,
        predicate,
        mode,
    })
}

fn top_predicate(top: &Obj) -> Result<Pred, SpecError> {
    pred_from(
        top.req("predicate", "a predicate object {\"op\": ...}")?,
        &top.at("predicate"),
        1,
    )
}

/// A predicate of a stream spec: read, then checked for prefix-closure.
fn stream_pred(v: &Json, path: &str) -> Result<Pred, SpecError> {
    let pred = pred_from(v, path, 1)?;
    check_stream_safe(&pred, path)
        .map_err(|e| err(&e.path, SpecErrorKind::NotStreamSafe { reason: e.reason }))?;
    Ok(pred)
}

/// `mode`, and `predicate` or `view`, of a version 2 spec.
fn mode_and_predicate(top: &Obj) -> Result<(Mode, Pred), SpecError> {
    let mode_what = r#"the mode of a version 2 spec: "stream" or "packet""#;
    let mode_value = top.req("mode", mode_what)?;
    let stream = match mode_value {
        Json::Str(s) if s == "stream" => true,
        Json::Str(s) if s == "packet" => false,
        other => return Err(expected(&top.at("mode"), mode_what, other)),
    };
    if !stream {
        if top.get("view").is_some() {
            return Err(err(
                &top.at("view"),
                SpecErrorKind::UnknownField {
                    field: "\"view\"".into(),
                    allowed: format!(
                        "{} (a view needs \"mode\": \"stream\")",
                        list(&[
                            "version",
                            "name",
                            "description",
                            "policy",
                            "mode",
                            "predicate"
                        ])
                    ),
                },
            ));
        }
        return Ok((Mode::Packet, top_predicate(top)?));
    }
    let Some(view) = top.get("view") else {
        let path = top.at("predicate");
        let pred = stream_pred(
            top.req("predicate", "a predicate object {\"op\": ...}")?,
            &path,
        )?;
        return Ok((Mode::Stream(StreamView::Whole), pred));
    };
    if top.get("predicate").is_some() {
        return Err(err(&top.at("predicate"), SpecErrorKind::ViewAndPredicate));
    }
    let view_path = top.at("view");
    let view_what = r#"a view object {"http_response": {"headers": ..., "body": ...}}"#;
    let view_obj = Obj::new(view, &view_path, view_what)?;
    view_obj.only(&["http_response"])?;
    let http_path = view_obj.at("http_response");
    let http = Obj::new(
        view_obj.req("http_response", view_what)?,
        &http_path,
        r#"an object {"headers": ..., "body": ...}"#,
    )?;
    http.only(&["headers", "body"])?;
    let pred_what = "a predicate object {\"op\": ...}";
    let headers = stream_pred(http.req("headers", pred_what)?, &http.at("headers"))?;
    let body = stream_pred(http.req("body", pred_what)?, &http.at("body"))?;
    Ok((Mode::Stream(StreamView::HttpResponse { headers }), body))
}

fn policy_from(v: &Json, path: &str) -> Result<Policy, SpecError> {
    const KEYS: [&str; 4] = ["arp", "ipv6_nd", "other_ip", "non_ip"];
    let obj = Obj::new(v, path, "a policy object")?;
    obj.only(&KEYS)?;
    let mut policy = Policy::default();
    for key in KEYS {
        let Some(v) = obj.get(key) else { continue };
        let action = match v {
            Json::Str(s) if s == "pass" => Action::Pass,
            Json::Str(s) if s == "drop" => Action::Drop,
            other => return Err(expected(&obj.at(key), r#""pass" or "drop""#, other)),
        };
        match key {
            "arp" => policy.arp = action,
            "ipv6_nd" => policy.ipv6_nd = action,
            "other_ip" => policy.other_ip = action,
            _ => policy.non_ip = action,
        }
    }
    Ok(policy)
}

fn fields_of(op: &str) -> Option<&'static [&'static str]> {
    Some(match op {
        "true" | "false" => &["op"],
        "not" => &["op", "arg"],
        "and" | "or" => &["op", "args"],
        "len" => &["op", "cmp", "value"],
        "byte" => &["op", "index", "class"],
        "all" | "any" => &["op", "window", "class"],
        "prefix" => &["op", "pattern"],
        "contains" => &["op", "window", "pattern"],
        "depth_le" => &["op", "window", "max", "open", "close", "strings"],
        _ => return None,
    })
}

fn pred_from(v: &Json, path: &str, depth: usize) -> Result<Pred, SpecError> {
    if depth > MAX_PRED_DEPTH {
        return Err(err(
            path,
            SpecErrorKind::PredicateTooDeep {
                limit: MAX_PRED_DEPTH,
            },
        ));
    }
    let pred_what = "a predicate object {\"op\": ...}";
    let obj = Obj::new(v, path, pred_what)?;
    let op_what = format!("an op name, one of {}", list(&OPS));
    let op = match obj.req("op", &op_what)? {
        Json::Str(s) => s.as_str(),
        other => return Err(expected(&obj.at("op"), &op_what, other)),
    };
    let Some(allowed) = fields_of(op) else {
        return Err(err(
            &obj.at("op"),
            SpecErrorKind::UnknownOp {
                found: quote_truncated(op),
                allowed: list(&OPS),
            },
        ));
    };
    obj.only(allowed)?;

    let offset = |key: &str| -> Result<u32, SpecError> {
        let what = format!("an integer from 0 to {MAX_OFFSET}");
        uint(obj.req(key, &what)?, &obj.at(key), MAX_OFFSET, &what)
    };
    let class = |key: &str| -> Result<ByteClass, SpecError> {
        class_from(obj.req(key, CLASS_EXPECTED)?, &obj.at(key))
    };
    let window = || -> Result<Window, SpecError> {
        window_from(
            obj.req("window", r#"a window object {"start": ..., "end": ...}"#)?,
            &obj.at("window"),
        )
    };
    let pattern = || -> Result<Pattern, SpecError> {
        pattern_from(obj.req("pattern", &pattern_what())?, &obj.at("pattern"))
    };

    Ok(match op {
        "true" => Pred::True,
        "false" => Pred::False,
        "not" => Pred::Not(Box::new(pred_from(
            obj.req("arg", pred_what)?,
            &obj.at("arg"),
            depth + 1,
        )?)),
        "and" | "or" => {
            let args_path = obj.at("args");
            let what = "an array of predicates";
            let args_value = obj.req("args", what)?;
            let Json::Array(items) = args_value else {
                return Err(expected(&args_path, what, args_value));
            };
            let args = items
                .iter()
                .enumerate()
                .map(|(i, item)| pred_from(item, &index_path(&args_path, i), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if op == "and" {
                Pred::And(args)
            } else {
                Pred::Or(args)
            }
        }
        "len" => {
            let cmp_value = obj.req("cmp", CMP_EXPECTED)?;
            let cmp = match cmp_value {
                Json::Str(s) => cmp_from_symbol(s),
                _ => None,
            }
            .ok_or_else(|| expected(&obj.at("cmp"), CMP_EXPECTED, cmp_value))?;
            Pred::Len {
                cmp,
                value: offset("value")?,
            }
        }
        "byte" => Pred::Byte {
            index: offset("index")?,
            class: class("class")?,
        },
        "all" => Pred::All {
            window: window()?,
            class: class("class")?,
        },
        "any" => Pred::Any {
            window: window()?,
            class: class("class")?,
        },
        "prefix" => Pred::Prefix {
            pattern: pattern()?,
        },
        "contains" => Pred::Contains {
            window: window()?,
            pattern: pattern()?,
        },
        "depth_le" => {
            let window = window()?;
            let max_what = format!("an integer from 0 to {MAX_DEPTH}");
            let max = uint(
                obj.req("max", &max_what)?,
                &obj.at("max"),
                MAX_DEPTH,
                &max_what,
            )?;
            let open = class("open")?;
            let close = class("close")?;
            let strings = match obj.req("strings", "true or false")? {
                Json::Bool(b) => *b,
                other => return Err(expected(&obj.at("strings"), "true or false", other)),
            };
            Pred::DepthLe {
                window,
                max,
                open,
                close,
                strings,
            }
        }
        _ => unreachable!("fields_of accepted only known ops"),
    })
}

fn cmp_from_symbol(s: &str) -> Option<Cmp> {
    Some(match s {
        "<" => Cmp::Lt,
        "<=" => Cmp::Le,
        "==" => Cmp::Eq,
        "!=" => Cmp::Ne,
        ">=" => Cmp::Ge,
        ">" => Cmp::Gt,
        _ => return None,
    })
}

fn uint(v: &Json, path: &str, max: u32, what: &str) -> Result<u32, SpecError> {
    match v {
        Json::UInt(u) if *u <= u64::from(max) => Ok(*u as u32),
        other => Err(expected(path, what, other)),
    }
}

fn window_from(v: &Json, path: &str) -> Result<Window, SpecError> {
    let obj = Obj::new(v, path, r#"a window object {"start": ..., "end": ...}"#)?;
    obj.only(&["start", "end"])?;
    let start_what = format!("an integer from 0 to {MAX_OFFSET}");
    let start = uint(
        obj.req("start", &start_what)?,
        &obj.at("start"),
        MAX_OFFSET,
        &start_what,
    )?;
    let end_what = format!("an integer from 0 to {MAX_OFFSET}, or null (unbounded)");
    let end = match obj.req("end", &end_what)? {
        Json::Null => None,
        other => Some(uint(other, &obj.at("end"), MAX_OFFSET, &end_what)?),
    };
    if let Some(end) = end {
        if end < start {
            return Err(err(
                &obj.at("end"),
                SpecErrorKind::WindowEndBeforeStart { start, end },
            ));
        }
    }
    Ok(Window { start, end })
}

fn class_from(v: &Json, path: &str) -> Result<ByteClass, SpecError> {
    match v {
        Json::Str(s) => match s.as_str() {
            "printable" => Ok(ByteClass::printable()),
            "text" => Ok(ByteClass::text()),
            "any" => Ok(ByteClass::full()),
            _ => Err(expected(path, CLASS_EXPECTED, v)),
        },
        Json::Array(items) => {
            let mut ranges = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let item_path = index_path(path, i);
                let range_what = "a byte range [lo, hi] of two integers from 0 to 255";
                let Json::Array(pair) = item else {
                    return Err(expected(&item_path, range_what, item));
                };
                if pair.len() != 2 {
                    return Err(expected(&item_path, range_what, item));
                }
                let byte_what = "an integer from 0 to 255";
                let lo = uint(&pair[0], &index_path(&item_path, 0), 255, byte_what)? as u8;
                let hi = uint(&pair[1], &index_path(&item_path, 1), 255, byte_what)? as u8;
                if lo > hi {
                    return Err(err(&item_path, SpecErrorKind::ReversedRange { lo, hi }));
                }
                ranges.push((lo, hi));
            }
            Ok(ByteClass::from_ranges(ranges))
        }
        other => Err(expected(path, CLASS_EXPECTED, other)),
    }
}

fn pattern_what() -> String {
    format!("a pattern: an array of 1 to {MAX_PATTERN_LEN} byte classes")
}

fn pattern_from(v: &Json, path: &str) -> Result<Pattern, SpecError> {
    match v {
        Json::Array(items) if !items.is_empty() && items.len() <= MAX_PATTERN_LEN => items
            .iter()
            .enumerate()
            .map(|(i, item)| class_from(item, &index_path(path, i)))
            .collect(),
        other => Err(expected(path, &pattern_what(), other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        assert_eq!(field_path("$", "predicate"), "$.predicate");
        assert_eq!(field_path("$.p", "a b"), r#"$.p["a b"]"#);
        assert_eq!(field_path("$", ""), r#"$[""]"#);
        assert_eq!(index_path("$.args", 3), "$.args[3]");
    }

    #[test]
    fn names() {
        assert!(is_valid_name("json_depth"));
        assert!(is_valid_name("_"));
        assert!(!is_valid_name("1x"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"n".repeat(64)));
    }

    #[test]
    fn every_op_has_a_field_list() {
        for op in OPS {
            assert_eq!(fields_of(op).map(|f| f[0]), Some("op"), "{op}");
        }
        assert_eq!(fields_of("xor"), None);
    }
}
