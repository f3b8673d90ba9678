//! What PostgreSQL can hold: its `text` and `jsonb` take any Unicode but U+0000, which JSON and
//! CBOR strings may carry (a meter's firmware line, a garbled reply quoted in an event, an unsigned
//! message's parse error quoting it). Left in, it fails the batch's transaction on every retry and
//! the hub stores nothing more. So each U+0000 in what goes to those columns becomes U+FFFD, the
//! replacement character; the signed envelope (`bytea`) keeps what the gateway said, byte for byte.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

const NUL: char = '\0';
const REPLACEMENT: &str = "\u{FFFD}";

/// `s` with each U+0000 replaced.
pub fn text(s: String) -> String {
    if s.contains(NUL) {
        s.replace(NUL, REPLACEMENT)
    } else {
        s
    }
}

/// Whether a string or key anywhere in `v` holds U+0000.
pub fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains(NUL),
        Value::Array(a) => a.iter().any(holds_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains(NUL) || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn replace_nul(v: &mut Value) {
    match v {
        Value::String(s) => *s = text(std::mem::take(s)),
        Value::Array(a) => a.iter_mut().for_each(replace_nul),
        Value::Object(o) => {
            *o = std::mem::take(o)
                .into_iter()
                .map(|(k, mut v)| {
                    replace_nul(&mut v);
                    (text(k), v)
                })
                .collect()
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `t` with each U+0000 in its strings replaced, through its JSON form (the contract's); `Err`
/// names why that form does not read back.
pub fn without_nul<T: Serialize + DeserializeOwned>(t: T) -> Result<T, serde_json::Error> {
    let mut v = serde_json::to_value(&t)?;
    if !holds_nul(&v) {
        return Ok(t);
    }
    replace_nul(&mut v);
    serde_json::from_value(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_replaced_in_strings_and_keys_at_any_depth_and_nothing_else_changes() {
        let mut v = serde_json::json!({"a\u{0}": ["x\u{0}y", 1, null, {"b": "\u{0}"}], "c": "clean"});
        assert!(holds_nul(&v));
        replace_nul(&mut v);
        assert!(!holds_nul(&v));
        assert_eq!(v, serde_json::json!({"a\u{FFFD}": ["x\u{FFFD}y", 1, null, {"b": "\u{FFFD}"}], "c": "clean"}));
        assert_eq!(text("clean".into()), "clean");
    }
}
