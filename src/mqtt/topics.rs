//! Topic names (contract: root = `spokegate/v1/{site}/{gw}`).

use crate::model::BodyKind;

pub const PREFIX: &str = "spokegate/v1";

pub fn root(site: &str, gw: &str) -> String {
    format!("{PREFIX}/{site}/{gw}")
}

pub fn status(site: &str, gw: &str) -> String {
    format!("{}/status", root(site, gw))
}

pub fn device_state(site: &str, gw: &str, dev: &str) -> String {
    format!("{}/dev/{dev}/state", root(site, gw))
}

/// The topic of a signed body (`wave` bodies add their stream).
pub fn body(site: &str, gw: &str, dev: &str, kind: BodyKind, stream: Option<&str>) -> String {
    match stream {
        Some(s) => format!("{}/dev/{dev}/{}/{s}", root(site, gw), kind.as_str()),
        None => format!("{}/dev/{dev}/{}", root(site, gw), kind.as_str()),
    }
}

/// What a topic says, as a hub reads it.
///
/// ```
/// use spokegate::mqtt::topics::{parse, TopicRef};
/// let t = parse("spokegate/v1/upazila-01/gw-01/dev/monitor-1/obs");
/// assert!(matches!(t, Some(TopicRef::Body { dev: "monitor-1", .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef<'a> {
    Status { site: &'a str, gw: &'a str },
    DeviceState { site: &'a str, gw: &'a str, dev: &'a str },
    Body { site: &'a str, gw: &'a str, dev: &'a str, kind: BodyKind, stream: Option<&'a str> },
}

pub fn parse(topic: &str) -> Option<TopicRef<'_>> {
    let rest = topic.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [site, gw, "status"] => Some(TopicRef::Status { site, gw }),
        [site, gw, "dev", dev, "state"] => Some(TopicRef::DeviceState { site, gw, dev }),
        [site, gw, "dev", dev, kind] => {
            let kind = match *kind {
                "obs" => BodyKind::Obs,
                "media" => BodyKind::Media,
                "event" => BodyKind::Event,
                _ => return None,
            };
            Some(TopicRef::Body { site, gw, dev, kind, stream: None })
        }
        [site, gw, "dev", dev, "wave", stream] => {
            Some(TopicRef::Body { site, gw, dev, kind: BodyKind::Wave, stream: Some(stream) })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_topics_parse_back() {
        let t = body("s1", "gw-1", "ecg-1", BodyKind::Wave, Some("ecg"));
        assert_eq!(t, "spokegate/v1/s1/gw-1/dev/ecg-1/wave/ecg");
        assert_eq!(
            parse(&t),
            Some(TopicRef::Body { site: "s1", gw: "gw-1", dev: "ecg-1", kind: BodyKind::Wave, stream: Some("ecg") })
        );
        assert_eq!(parse(&status("s", "g")), Some(TopicRef::Status { site: "s", gw: "g" }));
        assert_eq!(parse(&device_state("s", "g", "d")), Some(TopicRef::DeviceState { site: "s", gw: "g", dev: "d" }));
        assert_eq!(parse("spokegate/v1/s/g/dev/d/unknown"), None);
        assert_eq!(parse("other/v1/s/g/status"), None);
    }
}
