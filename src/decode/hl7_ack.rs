//! The HL7 ACK the gateway sends back to a device (HL7 v2 original acknowledgment mode):
//! `MSA|AA` once the readings are accepted, `AE` when none could be used, `AR` when the message
//! was refused (unparseable, or not ORU^R01). The reason goes in ERR-8 (user message).

use crate::clock::micros_to_rfc3339;
use crate::framing::mllp_wrap;
use hl7_parser::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    Accept,
    Error,
    Reject,
}

impl AckCode {
    fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// Builds the MLLP-framed ACK for `original` (None when its MSH could not be read).
pub fn ack(original: Option<&Message>, code: AckCode, reason: Option<&str>, now_micros: i64) -> Vec<u8> {
    let msh = original.filter(|m| m.separators.to_string().starts_with("|^~\\&")).and_then(|m| m.segment("MSH"));
    let f = |n: usize| msh.and_then(|s| super::hl7::field(s, n)).map(|f| f.raw_value()).unwrap_or("");
    let control_id = f(10);
    let version = if f(12).is_empty() { "2.6" } else { f(12) };
    let processing = if f(11).is_empty() { "P" } else { f(11) };
    let mut out = format!(
        "MSH|^~\\&|SPOKEGATE||{}|{}|{}||ACK^R01^ACK|A{}|{}|{}|||NE|NE",
        f(3),
        f(4),
        hl7_timestamp(now_micros),
        if control_id.is_empty() { "0".to_string() } else { control_id.to_string() },
        processing,
        version,
    );
    if !f(21).is_empty() {
        out.push_str(&format!("|||||{}", f(21)));
    }
    out.push_str(&format!("\rMSA|{}|{}\r", code.as_str(), control_id));
    if let Some(reason) = reason.filter(|_| code != AckCode::Accept) {
        let severity = "E";
        let hl7_code = if code == AckCode::Reject {
            "200^Unsupported message type^HL70357"
        } else {
            "207^Application internal error^HL70357"
        };
        out.push_str(&format!("ERR|||{hl7_code}|{severity}||||{}\r", escape(reason)));
    }
    mllp_wrap(out.as_bytes())
}

/// `YYYYMMDDHHMMSS+0000`.
fn hl7_timestamp(micros: i64) -> String {
    let r = micros_to_rfc3339(micros);
    let digits: String = r.chars().take(19).filter(char::is_ascii_digit).collect();
    format!("{digits}+0000")
}

/// HL7 escape sequences for the standard delimiters.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reject_carries_the_escaped_reason() {
        let wire = ack(None, AckCode::Reject, Some("bad | thing"), 0);
        let text = String::from_utf8(wire[1..wire.len() - 2].to_vec()).unwrap();
        assert!(text.contains("MSA|AR|\r"), "{text}");
        assert!(text.contains("bad \\F\\ thing"), "{text}");
        assert!(text.contains("|19700101000000+0000|"), "{text}");
        // The ACK itself parses as HL7.
        assert!(Message::parse(text.trim_end()).is_ok());
    }
}
