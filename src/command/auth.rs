//! Is a hub command genuine and meant for this gateway now? Checked before anything of it is
//! parsed or executed: a COSE_Sign1 signed by a hub key this gateway obeys, the body's `hub` the
//! one that key is bound to, addressed to this site and gateway on this gateway's topic, and
//! inside its time window. Replay is checked next, against the store (see the executor).

use crate::ids::is_valid_token;
use crate::model::{BodyKind, CmdBody};
use crate::mqtt::topics::{self, TopicRef};
use crate::sign::{open_from_hub, peek_unverified, EnvelopeError, KeyRing, KeyRingError, OpenError};

/// How far a command's `iat` may be ahead of the gateway's clock (clock skew).
pub const SKEW_MICROS: i64 = 5 * 60 * 1_000_000;
/// The longest window (`exp - iat`) a command may ask for; it bounds how long ids are kept.
pub const MAX_WINDOW_MICROS: i64 = 24 * 3600 * 1_000_000;

/// A command that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    pub cmd: CmdBody,
}

/// A command refused before it was parsed; `hub`, `id` and `name` as far as they could be read
/// (unverified when the signature did not verify: for the refusal only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub text: String,
    pub hub: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// Checks one message received on a `cmd` topic at gateway time `now` (µs).
pub fn authenticate(
    topic: &str,
    payload: &[u8],
    keys: &KeyRing,
    site: &str,
    gw: &str,
    now: i64,
) -> Result<Authenticated, Refused> {
    let peek: Option<CmdBody> = peek_unverified(payload);
    let refuse = |code: &'static str, text: String| Refused {
        code,
        text,
        hub: peek.as_ref().map(|c| c.hub.clone()),
        id: peek.as_ref().map(|c| c.id.clone()),
        name: peek.as_ref().map(|c| c.name.clone()),
    };
    let topic_name = match topics::parse(topic) {
        Some(TopicRef::Cmd { site: s, gw: g, name }) if s == site && g == gw => name,
        _ => return Err(refuse("wrong-addressee", format!("topic {topic} is not this gateway's"))),
    };
    let (cmd, key_hub) = open_from_hub::<CmdBody>(payload, keys).map_err(|e| match e {
        OpenError::Envelope(EnvelopeError::BadSignature) => {
            refuse("bad-signature", "the signature does not verify with the hub key its kid names".into())
        }
        OpenError::Envelope(EnvelopeError::NotCoseSign1(why)) => {
            refuse("unsigned", format!("not a signed COSE_Sign1 message ({why})"))
        }
        OpenError::Envelope(other) => refuse("malformed", other.to_string()),
        OpenError::Key(KeyRingError::UnknownKey(kid)) => {
            refuse("unknown-key", format!("signed by key {kid}, which is not a hub key this gateway obeys"))
        }
        OpenError::Key(other) => refuse("unknown-key", other.to_string()),
        OpenError::Body(why) => refuse("malformed", format!("not a cmd body: {why}")),
    })?;
    if cmd.kind != BodyKind::Cmd {
        return Err(refuse("malformed", format!("a `{}` body on a cmd topic", cmd.kind.as_str())));
    }
    if cmd.hub != key_hub {
        return Err(refuse("wrong-hub", format!("signed with the key of hub {key_hub} but says hub {}", cmd.hub)));
    }
    if cmd.site != site || cmd.gw != gw {
        return Err(refuse("wrong-addressee", format!("addressed to {}/{}, this is {site}/{gw}", cmd.site, cmd.gw)));
    }
    if cmd.name != topic_name {
        return Err(refuse("malformed", format!("body names `{}` on topic cmd/{topic_name}", cmd.name)));
    }
    if !is_valid_token(&cmd.id) {
        return Err(refuse("malformed", "`id` must match [A-Za-z0-9._:-]{1,64}".into()));
    }
    if now > cmd.exp {
        return Err(refuse("expired", format!("expired {} s ago", now.saturating_sub(cmd.exp) / 1_000_000)));
    }
    if now < cmd.iat.saturating_sub(SKEW_MICROS) {
        return Err(refuse(
            "not-yet-valid",
            format!("issued {} s in the future by this gateway's clock", cmd.iat.saturating_sub(now) / 1_000_000),
        ));
    }
    if cmd.exp.saturating_sub(cmd.iat) > MAX_WINDOW_MICROS {
        return Err(refuse("window-too-long", "a command may be valid for at most 24 hours".into()));
    }
    Ok(Authenticated { cmd })
}

/// Signs a hub command (what `spokegate hub send` and hub software do); its `hub` is the key's.
pub fn sign_command(key: &crate::sign::SigningKey, mut cmd: CmdBody) -> Result<Vec<u8>, String> {
    cmd.hub = key.hub().ok_or("not a hub key (its file has no `spokegate-hub:` line)")?.to_string();
    let bytes = crate::model::encode(&cmd, crate::model::BodyFormat::Cbor).map_err(|e| e.to_string())?;
    Ok(crate::sign::seal(key, &bytes, crate::model::BodyFormat::Cbor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{Binding, BoundKey, SigningKey};

    const NOW: i64 = 1_800_000_000_000_000;
    const MIN: i64 = 60_000_000;

    struct Hub {
        _dir: tempfile::TempDir,
        key: SigningKey,
        keys: KeyRing,
    }

    fn hub(id: &str) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate_hub(&dir.path().join("h.key"), id).unwrap();
        let keys = KeyRing::new([BoundKey { key: key.public().clone(), binding: Binding::Hub { hub: id.into() } }]);
        Hub { _dir: dir, key, keys }
    }

    fn signed(h: &Hub, site: &str, gw: &str, name: &str, iat: i64, exp: i64) -> Vec<u8> {
        sign_command(&h.key, CmdBody::new(site, gw, "c-1", name, Default::default(), iat, exp)).unwrap()
    }

    fn check(keys: &KeyRing, topic_gw: &str, payload: &[u8], now: i64) -> Result<Authenticated, Refused> {
        authenticate(&topics::cmd("s", topic_gw, "status"), payload, keys, "s", "gw", now)
    }

    #[test]
    fn a_command_from_an_obeyed_hub_inside_its_window_passes() {
        let h = hub("hub-1");
        let ok = check(&h.keys, "gw", &signed(&h, "s", "gw", "status", NOW, NOW + MIN), NOW).unwrap();
        assert_eq!((ok.cmd.hub.as_str(), ok.cmd.id.as_str()), ("hub-1", "c-1"));
        // Up to five minutes of clock skew either way of issue.
        assert!(check(&h.keys, "gw", &signed(&h, "s", "gw", "status", NOW + 4 * MIN, NOW + 9 * MIN), NOW).is_ok());
    }

    #[test]
    fn every_refusal_names_its_reason() {
        let h = hub("hub-1");
        let other = hub("hub-2");
        let good = signed(&h, "s", "gw", "status", NOW, NOW + MIN);
        let mut tampered = good.clone();
        let at = tampered.len() - 70; // inside the payload, before the signature
        tampered[at] ^= 1;
        let cases: Vec<(&str, Vec<u8>, &str, i64)> = vec![
            ("bad-signature", tampered, "gw", NOW),
            ("unknown-key", signed(&other, "s", "gw", "status", NOW, NOW + MIN), "gw", NOW),
            ("unsigned", br#"{"v":1,"type":"cmd"}"#.to_vec(), "gw", NOW),
            ("wrong-addressee", signed(&h, "s", "gw-other", "status", NOW, NOW + MIN), "gw", NOW),
            ("wrong-addressee", good.clone(), "gw-other", NOW),
            ("malformed", signed(&h, "s", "gw", "rebirth", NOW, NOW + MIN), "gw", NOW),
            ("expired", good.clone(), "gw", NOW + 2 * MIN),
            ("not-yet-valid", good.clone(), "gw", NOW - 6 * MIN),
            ("window-too-long", signed(&h, "s", "gw", "status", NOW, NOW + 25 * 60 * MIN), "gw", NOW),
        ];
        for (code, payload, topic_gw, now) in cases {
            let r = check(&h.keys, topic_gw, &payload, now).unwrap_err();
            assert_eq!(r.code, code, "{}", r.text);
        }
        // A refusal names the command when it could be read, even unverified.
        let r = check(&h.keys, "gw", &signed(&other, "s", "gw", "status", NOW, NOW + MIN), NOW).unwrap_err();
        assert_eq!((r.hub.as_deref(), r.id.as_deref()), (Some("hub-2"), Some("c-1")));
    }

    #[test]
    fn a_hub_key_that_signs_for_another_hub_is_refused() {
        let h = hub("hub-1");
        // hub-2's id in the body, signed with hub-1's key.
        let body = CmdBody {
            v: 1,
            kind: BodyKind::Cmd,
            site: "s".into(),
            gw: "gw".into(),
            hub: "hub-2".into(),
            id: "c-9".into(),
            name: "status".into(),
            args: Default::default(),
            iat: NOW,
            exp: NOW + MIN,
        };
        let bytes = crate::model::encode(&body, crate::model::BodyFormat::Cbor).unwrap();
        let sealed = crate::sign::seal(&h.key, &bytes, crate::model::BodyFormat::Cbor);
        assert_eq!(check(&h.keys, "gw", &sealed, NOW).unwrap_err().code, "wrong-hub");
    }

    /// A well-signed command with times at the ends of the range is refused, not a panic on
    /// overflow (`now - exp` overflowed before: seen while writing `fuzz/`'s gateway_command).
    #[test]
    fn times_at_the_ends_of_the_range_are_refused_without_overflow() {
        let h = hub("hub-1");
        let r = check(&h.keys, "gw", &signed(&h, "s", "gw", "status", i64::MIN, i64::MIN), NOW).unwrap_err();
        assert_eq!(r.code, "expired", "{}", r.text);
        let r = check(&h.keys, "gw", &signed(&h, "s", "gw", "status", i64::MAX, i64::MAX), -NOW).unwrap_err();
        assert_eq!(r.code, "not-yet-valid", "{}", r.text);
        let r = check(&h.keys, "gw", &signed(&h, "s", "gw", "status", i64::MIN, i64::MAX), NOW).unwrap_err();
        assert_eq!(r.code, "window-too-long", "{}", r.text);
    }
}
