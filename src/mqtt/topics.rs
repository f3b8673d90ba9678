//! Topic names (contract: root = `spokegate/v1/{site}/{gw}`).

use crate::model::{Body, BodyKind};

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

/// `{root}/consult` (retained).
pub fn consult(site: &str, gw: &str) -> String {
    format!("{}/consult", root(site, gw))
}

/// `{root}/cmd/{name}`: a hub's command.
pub fn cmd(site: &str, gw: &str, name: &str) -> String {
    format!("{}/cmd/{name}", root(site, gw))
}

/// `{root}/reply/{id}`: the answer to command `id`.
pub fn reply(site: &str, gw: &str, id: &str) -> String {
    format!("{}/reply/{id}", root(site, gw))
}

/// `{root}/ack`: a hub's end-to-end acknowledgement.
pub fn ack(site: &str, gw: &str) -> String {
    format!("{}/ack", root(site, gw))
}

/// The topic a gateway publishes a body on.
pub fn for_body(b: &Body) -> String {
    let r = root(&b.site, &b.gw);
    match (b.kind, b.dev.as_deref()) {
        (BodyKind::Consult, _) => format!("{r}/consult"),
        (BodyKind::Reply, _) => format!("{r}/reply/{}", b.reply.as_ref().map_or("", |x| x.cmd.as_str())),
        (BodyKind::Wave, Some(dev)) => {
            format!("{r}/dev/{dev}/wave/{}", b.wave.as_ref().map_or("", |w| w.stream.as_str()))
        }
        (kind, Some(dev)) => format!("{r}/dev/{dev}/{}", kind.as_str()),
        (kind, None) => format!("{r}/{}", kind.as_str()),
    }
}

/// What a topic says, as a hub (or a gateway, for `cmd` and `ack`) reads it.
///
/// ```
/// use spokegate::mqtt::topics::{parse, TopicRef};
/// let t = parse("spokegate/v1/upazila-01/gw-01/dev/monitor-1/obs");
/// assert!(matches!(t, Some(TopicRef::Body { dev: Some("monitor-1"), .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef<'a> {
    Status {
        site: &'a str,
        gw: &'a str,
    },
    DeviceState {
        site: &'a str,
        gw: &'a str,
        dev: &'a str,
    },
    /// A body a gateway signs. `dev` is absent for the gateway's own `event`, `consult` and
    /// `reply`; `sub` is the wave stream or the reply's command id.
    Body {
        site: &'a str,
        gw: &'a str,
        dev: Option<&'a str>,
        kind: BodyKind,
        sub: Option<&'a str>,
    },
    Cmd {
        site: &'a str,
        gw: &'a str,
        name: &'a str,
    },
    Ack {
        site: &'a str,
        gw: &'a str,
    },
}

impl<'a> TopicRef<'a> {
    /// The topic's site and gateway.
    pub fn site_gw(&self) -> (&'a str, &'a str) {
        match *self {
            TopicRef::Status { site, gw }
            | TopicRef::DeviceState { site, gw, .. }
            | TopicRef::Body { site, gw, .. }
            | TopicRef::Cmd { site, gw, .. }
            | TopicRef::Ack { site, gw } => (site, gw),
        }
    }
}

pub fn parse(topic: &str) -> Option<TopicRef<'_>> {
    let rest = topic.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let body = |site, gw, dev, kind, sub| Some(TopicRef::Body { site, gw, dev, kind, sub });
    match parts.as_slice() {
        [site, gw, "status"] => Some(TopicRef::Status { site, gw }),
        [site, gw, "consult"] => body(site, gw, None, BodyKind::Consult, None),
        [site, gw, "event"] => body(site, gw, None, BodyKind::Event, None),
        [site, gw, "reply", id] => body(site, gw, None, BodyKind::Reply, Some(id)),
        [site, gw, "cmd", name] => Some(TopicRef::Cmd { site, gw, name }),
        [site, gw, "ack"] => Some(TopicRef::Ack { site, gw }),
        [site, gw, "dev", dev, "state"] => Some(TopicRef::DeviceState { site, gw, dev }),
        [site, gw, "dev", dev, kind] => {
            let kind = match *kind {
                "obs" => BodyKind::Obs,
                "media" => BodyKind::Media,
                "event" => BodyKind::Event,
                _ => return None,
            };
            body(site, gw, Some(dev), kind, None)
        }
        [site, gw, "dev", dev, "wave", stream] => body(site, gw, Some(dev), BodyKind::Wave, Some(stream)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_topics_parse_back() {
        assert_eq!(
            parse("spokegate/v1/s1/gw-1/dev/ecg-1/wave/ecg"),
            Some(TopicRef::Body { site: "s1", gw: "gw-1", dev: Some("ecg-1"), kind: BodyKind::Wave, sub: Some("ecg") })
        );
        assert_eq!(parse(&status("s", "g")), Some(TopicRef::Status { site: "s", gw: "g" }));
        assert_eq!(parse(&device_state("s", "g", "d")), Some(TopicRef::DeviceState { site: "s", gw: "g", dev: "d" }));
        assert_eq!(
            parse(&consult("s", "g")),
            Some(TopicRef::Body { site: "s", gw: "g", dev: None, kind: BodyKind::Consult, sub: None })
        );
        assert_eq!(
            parse(&reply("s", "g", "c-1")),
            Some(TopicRef::Body { site: "s", gw: "g", dev: None, kind: BodyKind::Reply, sub: Some("c-1") })
        );
        assert_eq!(parse(&cmd("s", "g", "capture")), Some(TopicRef::Cmd { site: "s", gw: "g", name: "capture" }));
        assert_eq!(parse(&ack("s", "g")), Some(TopicRef::Ack { site: "s", gw: "g" }));
        assert_eq!(
            parse("spokegate/v1/s/g/event"),
            Some(TopicRef::Body { site: "s", gw: "g", dev: None, kind: BodyKind::Event, sub: None })
        );
        assert_eq!(parse("spokegate/v1/s/g/dev/d/unknown"), None);
        assert_eq!(parse("spokegate/v1/s/g/cmd"), None);
        assert_eq!(parse("other/v1/s/g/status"), None);
    }
}
