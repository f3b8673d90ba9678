//! The hub doctor's consult view: one page per consult or gateway (ECG strips on the standard grid,
//! the heart sound, spot readings with their proof, images, commands to the spoke), served by
//! `spokegate-hub` from PostgreSQL for its users, and by `spokegate demo` from memory. Here is
//! what both serve alike: the page (built into the binary), the items it is sent, the live feed,
//! and the commands it may send.

pub mod item;
pub mod live;
pub mod memory;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub use item::{image_url, item, media_key, ImageDone, MediaKey, Proof};
pub use live::{FeedEvent, Live, LiveFeed, Scope};

const VIEW_HTML: &str = include_str!("assets/view.html");
/// The sign-in form (`{{NEXT}}`, `{{MESSAGE}}` replaced, HTML-escaped).
pub const LOGIN_HTML: &str = include_str!("assets/login.html");
const ASSETS: &[(&str, &str, &str)] = &[
    ("strip.js", "text/javascript; charset=utf-8", STRIP_JS),
    ("view.js", "text/javascript; charset=utf-8", include_str!("assets/view.js")),
    ("view.css", "text/css; charset=utf-8", include_str!("assets/view.css")),
];

/// The waveform strips (grid, exact-sample trace, gaps), also on the operator's page.
pub const STRIP_JS: &str = include_str!("assets/strip.js");

/// The commands a page may send.
pub const ASKABLE: [&str; 5] = ["capture", "records.fetch", "stream.start", "stream.stop", "status"];
/// How long a command from a page is valid.
const COMMAND_VALID_US: i64 = 120_000_000;

/// What a browser may do with the view's answers: the pages run only the view's own scripts and
/// styles (no inline script, no other origin, no framing), and nothing is sniffed into another
/// type than the one stated, so an image a gateway signed is only ever an image.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the policy, `nosniff` and `no-referrer` to an answer (a router's `map_response` layer).
pub async fn security_headers(mut r: Response) -> Response {
    use axum::http::HeaderValue;
    let h = r.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// `s` for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for `scope`; `csrf` and the signed-in `user` (none: a service without accounts, the
/// demo's) go into its configuration.
pub fn page_html(scope: &Scope, csrf: &str, user: Option<&str>) -> String {
    let (title, cfg) = match scope {
        Scope::Consult(c) => {
            (format!("Consult {c}"), serde_json::json!({"scope": "consult", "consult": c, "csrf": csrf, "user": user}))
        }
        Scope::Gateway { site, gw } => (
            format!("Gateway {site} / {gw}"),
            serde_json::json!({"scope": "gateway", "site": site, "gw": gw, "csrf": csrf, "user": user}),
        ),
    };
    let mut cfg = cfg;
    cfg["accounts"] = user.is_some().into();
    // JSON inside <script>: no `<` that could close it.
    let cfg = cfg.to_string().replace('<', "\\u003c");
    VIEW_HTML.replace("{{TITLE}}", &esc(&title)).replace("{{CFG}}", &cfg)
}

/// `/assets/{name}`.
pub fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, text)) => {
            ([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "public, max-age=3600")], *text).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// What the page asks: a command to a gateway.
#[derive(Debug, serde::Deserialize)]
pub struct Ask {
    pub site: String,
    pub gw: String,
    pub name: String,
    #[serde(default)]
    pub args: crate::command::Args,
}

/// A command signed with the hub's key, ready to publish: (id, topic, COSE_Sign1).
pub fn signed_command(key: &crate::sign::SigningKey, ask: Ask) -> Result<(String, String, Vec<u8>), String> {
    if !ASKABLE.contains(&ask.name.as_str()) {
        return Err(format!("a page sends {}; not `{}`", ASKABLE.join(", "), ask.name));
    }
    let now = crate::clock::now_micros();
    let mut nonce = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(|_| "no random source")?;
    let id = format!("view-{now}-{}", hex::encode(nonce));
    let body = crate::model::CmdBody::new(&ask.site, &ask.gw, &id, &ask.name, ask.args, now, now + COMMAND_VALID_US);
    let signed = crate::command::auth::sign_command(key, body)?;
    Ok((id, crate::mqtt::topics::cmd(&ask.site, &ask.gw, &ask.name), signed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_the_configuration_cannot_close_its_script() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        let html = page_html(&Scope::Consult("</script><b>".into()), "t", Some("u"));
        assert!(!html.contains("</script><b>"), "{html}");
        assert!(html.contains("Consult &lt;/script&gt;&lt;b&gt;"));
    }

    #[test]
    fn a_page_command_is_signed_for_its_gateway_and_only_the_askable_are() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::sign::SigningKey::generate_hub(&dir.path().join("hub.key"), "hub-1").unwrap();
        let args = crate::command::Args::from([("dev".to_string(), serde_json::json!("scope"))]);
        let (id, topic, signed) =
            signed_command(&key, Ask { site: "s".into(), gw: "g".into(), name: "capture".into(), args }).unwrap();
        assert_eq!(topic, crate::mqtt::topics::cmd("s", "g", "capture"));
        let bound = crate::sign::BoundKey {
            key: key.public().clone(),
            binding: crate::sign::Binding::Hub { hub: "hub-1".into() },
        };
        let (cmd, hub): (crate::model::CmdBody, String) =
            crate::sign::open_from_hub(&signed, &crate::sign::KeyRing::new([bound])).unwrap();
        assert_eq!((cmd.id.as_str(), cmd.name.as_str(), hub.as_str()), (id.as_str(), "capture", "hub-1"));
        let refused = Ask { site: "s".into(), gw: "g".into(), name: "rebirth".into(), args: Default::default() };
        assert!(signed_command(&key, refused).is_err());
    }
}
