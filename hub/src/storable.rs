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

    #[test]
    fn a_body_keeps_everything_but_its_nul_through_the_json_form() {
        use spokegate::model::{Body, ConsultBy, Event, Severity};
        use spokegate::pipeline::{make_body, ConsultChange, Payload, Source};
        // A consult that ended (`consult: null`, not absent) by a command whose id holds U+0000.
        let change = ConsultChange { consult: None, by: ConsultBy::Hub, cmd: Some("cmd\0-1".into()) };
        let ended = make_body("s", "g", None, Payload::Consult(change), 7, 11, None);
        let clean = without_nul(ended.clone()).unwrap();
        assert_eq!(clean.consult, Some(None), "the end of a consult stays an end");
        assert_eq!(clean.binding.as_ref().unwrap().cmd.as_deref(), Some("cmd\u{FFFD}-1"));
        assert_eq!(Body { binding: ended.binding.clone(), ..clean.clone() }, ended, "nothing else changed");
        // An event with U+0000 in its text and in a key and value of its data.
        let event = Event::new("device-info", Severity::Info, "fw\0").with("re\0ply", "a\0b");
        let from = Source { dev: "glucose-1".into(), profile: "onetouch-ultra2".into() };
        let info = make_body("s", "g", Some(&from), Payload::Event(event), 8, 12, Some(13));
        let clean = without_nul(info.clone()).unwrap();
        let e = clean.event.as_ref().unwrap();
        assert_eq!(e.text, "fw\u{FFFD}");
        assert_eq!(e.data.as_ref().unwrap()["re\u{FFFD}ply"], "a\u{FFFD}b");
        assert_eq!(Body { event: info.event.clone(), ..clean }, info, "nothing else changed");
    }
}
