//! `spokegate profile test PROFILE CAPTURE`: decode a capture offline with a profile and print the
//! contract bodies it gives, one JSON line each, with no broker and no key. This is how an operator
//! develops a profile, like rtl_433's `-r`.
//!
//! A capture is the raw bytes as the device sent them, or (`.hex` files, or `--hex`) text lines of
//! hexadecimal bytes; `#` starts a comment in a hex file.

use crate::clock::now_micros;
use crate::decode::Decoder;
use crate::framing::framer_for;
use crate::model::Body;
use crate::pipeline::{make_body, Payload, Source};
use crate::profile::Profile;
use crate::wave::WaveStream;
use std::time::Instant;

/// The site, gateway and device named in offline bodies.
pub const OFFLINE_SITE: &str = "offline";
pub const OFFLINE_GW: &str = "capture";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: `{token}` is not a hex byte")]
pub struct HexError {
    pub line: usize,
    pub token: String,
}

/// Reads hex text: bytes as pairs of hex digits, separated by white space or not, `#` comments.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for token in line.split_whitespace() {
            let bad = || HexError { line: i + 1, token: token.to_string() };
            if token.len() % 2 != 0 {
                return Err(bad());
            }
            for pair in token.as_bytes().chunks(2) {
                let s = std::str::from_utf8(pair).map_err(|_| bad())?;
                out.push(u8::from_str_radix(s, 16).map_err(|_| bad())?);
            }
        }
    }
    Ok(out)
}

/// Decodes a whole capture: every reading and every problem, as the bodies the daemon would sign.
pub fn decode_capture(profile: &Profile, bytes: &[u8]) -> Vec<Body> {
    let decoder = Decoder::new(profile.decoder.clone());
    let mut framer = framer_for(&profile.framing);
    let mut bodies = Bodies::new(profile);
    let mut push = |payload: Payload, tdev: Option<i64>| bodies.push(payload, tdev);
    let mut wave = profile.wave.clone().map(WaveStream::new);
    let mut chunks = Vec::new();
    let rejected = |wave: &mut Option<WaveStream>, push: &mut dyn FnMut(Payload, Option<i64>)| {
        if let Some(gap) = wave.as_mut().and_then(WaveStream::rejected) {
            push(Payload::Event(gap), None);
        }
    };
    framer.push(bytes);
    loop {
        let next = framer.next_frame();
        // Offline, every message counts as stored: the link protocol carries on.
        framer.settle(true);
        match next {
            Ok(Some(frame)) => match decoder.decode(&frame, now_micros()) {
                Ok(d) => {
                    for p in d.problems {
                        push(Payload::Event(p), None);
                    }
                    if !d.observations.is_empty() {
                        push(Payload::Obs(d.observations), d.tdev);
                    }
                    if let (Some(samples), Some(stream)) = (&d.wave, wave.as_mut()) {
                        if let Some(gap) = stream.frame(samples, now_micros(), Instant::now(), &mut chunks) {
                            push(Payload::Event(gap), None);
                        }
                        for c in chunks.drain(..) {
                            push(Payload::Wave(c), None);
                        }
                    }
                }
                Err(e) => {
                    push(Payload::Event(e.to_event()), None);
                    rejected(&mut wave, &mut push);
                }
            },
            Ok(None) => break,
            Err(e) => {
                push(Payload::Event(e.to_event()), None);
                rejected(&mut wave, &mut push);
            }
        }
    }
    if let Some(e) = framer.finish() {
        push(Payload::Event(e.to_event()), None);
    }
    if let Some(c) = wave.as_mut().and_then(WaveStream::flush) {
        push(Payload::Wave(c), None);
    }
    bodies.0
}

/// The bodies of an offline decode, numbered from 1.
struct Bodies(Vec<Body>, Source);

impl Bodies {
    fn new(profile: &Profile) -> Self {
        Self(Vec::new(), Source { dev: profile.id.as_str().into(), profile: profile.id.as_str().into() })
    }

    fn push(&mut self, payload: Payload, tdev: Option<i64>) {
        let seq = self.0.len() as u64 + 1;
        self.0.push(make_body(OFFLINE_SITE, OFFLINE_GW, Some(&self.1), payload, seq, now_micros(), tdev));
    }
}

/// Decodes a BLE capture: one notification per line, `<characteristic uuid> <hex bytes>`
/// (`0x2A37 0e4b00` or a 128-bit UUID; `#` starts a comment). Glucose contexts are joined to their
/// measurement as the daemon does.
pub fn decode_ble_capture(profile: &Profile, text: &str) -> Result<Vec<Body>, HexError> {
    use crate::decode::ble::{decode, Assembled, Assembler, Notified};
    let mut bodies = Bodies::new(profile);
    let mut push = |payload: Payload, tdev: Option<i64>| bodies.push(payload, tdev);
    let mut wave = profile.wave.clone().map(WaveStream::new);
    let mut chunks = Vec::new();
    let mut session = Assembler::default();
    let mut not_forwarded = crate::decode::ble::NotForwarded::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || HexError { line: i + 1, token: line.to_string() };
        let (uuid, hex_text) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
        let uuid = crate::decode::gatt::parse_uuid(uuid).ok_or_else(bad)?;
        let bytes = parse_hex(hex_text).map_err(|_| bad())?;
        match decode(&profile.decoder, &uuid, &bytes) {
            Ok(Notified::Reading(r)) => {
                for p in &r.problems {
                    push(Payload::Event(p.clone()), None);
                }
                if let Some(e) = not_forwarded.report(&r) {
                    push(Payload::Event(e), None);
                }
                for a in session.reading(r, |_| false) {
                    match a {
                        Assembled::Ready(m) if !m.observations.is_empty() => push(Payload::Obs(m.observations), m.tdev),
                        Assembled::Ready(_) => {}
                        Assembled::Unmatched(event) => push(Payload::Event(event), None),
                    }
                }
            }
            Ok(Notified::Samples(mut frame, _, ts_ns)) => {
                if let Some(stream) = wave.as_mut() {
                    session.place(&mut frame, ts_ns, profile.wave.as_ref().map_or(130.0, |w| w.rate));
                    if let Some(gap) = stream.frame(&frame, now_micros(), Instant::now(), &mut chunks) {
                        push(Payload::Event(gap), None);
                    }
                    for c in chunks.drain(..) {
                        push(Payload::Wave(c), None);
                    }
                }
            }
            Ok(Notified::Racp(_) | Notified::PmdControl(_)) => {}
            Err(e) => push(Payload::Event(e.to_event()), None),
        }
    }
    if let Some(m) = session.flush().filter(|m| !m.observations.is_empty()) {
        push(Payload::Obs(m.observations), m.tdev);
    }
    if let Some(c) = wave.as_mut().and_then(WaveStream::flush) {
        push(Payload::Wave(c), None);
    }
    Ok(bodies.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ble_captures_decode_notifications_by_characteristic() {
        let reg = crate::profile::ProfileRegistry::builtin().unwrap();
        let hr = reg.get("ble-heart-rate").unwrap();
        // Heart rate 75 with RR intervals 1028/1024 s and 1080/1024 s (nRF Toolbox vector).
        let bodies = decode_ble_capture(&hr, "# strap\n0x2A37 194b00380404043804\n0x2A37 ff\n").unwrap();
        let obs = bodies[0].obs.as_ref().unwrap();
        assert_eq!(obs[0].val, Some(75.0));
        assert_eq!(obs[0].code.mdc, 147842);
        assert_eq!(obs.iter().filter(|o| o.code.mdc == 147240).count(), 2);
        assert_eq!(bodies[1].event.as_ref().unwrap().code, "gatt-invalid");
        assert!(decode_ble_capture(&hr, "0x2A37 zz").is_err());
    }

    #[test]
    fn a_glucose_context_joins_its_measurement() {
        let reg = crate::profile::ProfileRegistry::builtin().unwrap();
        let meter = reg.get("ble-glucose").unwrap();
        // Measurement record 2 (81 mol/L, context follows) and a context for record 2: meal
        // "casual" (4) as in the Levio vector's layout (flags 0x02: meal only).
        let text = "0x2A18 1f0200e40705150a1e2d00005100140600\n0x2A34 02020004\n";
        let bodies = decode_ble_capture(&meter, text).unwrap();
        assert_eq!(bodies.len(), 1);
        let o = &bodies[0].obs.as_ref().unwrap()[0];
        assert_eq!((o.val, o.unit.ucum.as_str()), (Some(81_000.0), "mmol/L"));
        let ctx = o.ctx.as_ref().unwrap();
        assert_eq!(
            (ctx["meal"].as_str(), ctx["record"].as_str(), ctx["sample_type"].as_str()),
            ("casual", "2", "venous-plasma")
        );
    }

    #[test]
    fn hex_captures_allow_spacing_and_comments() {
        assert_eq!(parse_hex("0b 4d53\n# note\n1c0d # end").unwrap(), [0x0b, 0x4d, 0x53, 0x1c, 0x0d]);
        assert_eq!(parse_hex("0b\nzz").unwrap_err(), HexError { line: 2, token: "zz".into() });
        assert!(parse_hex("abc").is_err());
    }
}
