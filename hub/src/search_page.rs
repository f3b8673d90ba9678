//! Paging a FHIR search (RESTful API, "Paging"): a page ends where the next begins, at the
//! position of its last observation (site, gateway, seq, value index: the order of the search;
//! first when it was measured, for a search sorted by it), which the `next` link carries as an
//! opaque cursor. A page costs the same however deep it is,
//! and readings stored meanwhile do not shift the pages a client is reading.

use base64::Engine;

/// Where a page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub site: String,
    pub gw: String,
    pub seq: i64,
    pub idx: i32,
    /// When it was measured (µs), in a search sorted by it.
    pub measured: Option<i64>,
}

/// A cursor's JSON: the position, with the measured time or without.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Cursor {
    Sorted(String, String, i64, i32, i64),
    Signed(String, String, i64, i32),
}

impl Position {
    /// The cursor a `next` link carries (base64url of a JSON array).
    pub fn cursor(&self) -> String {
        let json = match self.measured {
            Some(t) => serde_json::json!([self.site, self.gw, self.seq, self.idx, t]),
            None => serde_json::json!([self.site, self.gw, self.seq, self.idx]),
        }
        .to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// The position a cursor names; `None` for anything this server did not make.
    pub fn from_cursor(cursor: &str) -> Option<Position> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
        Some(match serde_json::from_slice(&json).ok()? {
            Cursor::Sorted(site, gw, seq, idx, t) => Position { site, gw, seq, idx, measured: Some(t) },
            Cursor::Signed(site, gw, seq, idx) => Position { site, gw, seq, idx, measured: None },
        })
    }
}

/// Where links for a client start: the configured public address, or else `http://` and the
/// request's Host (the hub itself serves plain HTTP), or else nothing (a link relative to the
/// server's root).
pub fn base(public_url: Option<&str>, headers: &axum::http::HeaderMap) -> String {
    if let Some(u) = public_url {
        return u.to_string();
    }
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    match host {
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && !b"/?#@\\".contains(&b)) => {
            format!("http://{h}")
        }
        _ => String::new(),
    }
}

/// A search's URL from its address and parameters, the absent ones left out.
pub fn url(path: &str, params: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> =
        params.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", percent_encode(v)))).collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// RFC 3986 percent-encoding of a query value: all but the unreserved characters.
fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_names_its_position_and_nothing_else_is_taken_for_one() {
        let p = Position { site: "upazila-01".into(), gw: "gw \"a\"/ü".into(), seq: 1 << 40, idx: 3, measured: None };
        assert_eq!(Position::from_cursor(&p.cursor()), Some(p.clone()));
        let sorted = Position { measured: Some(-1_765_000_000_000_000), ..p.clone() };
        assert_eq!(Position::from_cursor(&sorted.cursor()), Some(sorted));
        assert!(p.cursor().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        for bad in [
            "",
            "!!",
            "WzFd",
            "eyJzaXRlIjoxfQ",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[\"a\",\"b\",1]"),
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[\"a\",\"b\",1,2,\"t\"]"),
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[\"a\",\"b\",1,2,3,4]"),
        ] {
            assert_eq!(Position::from_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn links_start_with_the_public_address_else_the_host_asked_else_the_root() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(base(None, &headers), "");
        headers.insert(axum::http::header::HOST, "hub.local:8490".parse().unwrap());
        assert_eq!(base(None, &headers), "http://hub.local:8490");
        assert_eq!(base(Some("https://hub.example.org"), &headers), "https://hub.example.org");
        for odd in ["evil.example/path", "a@b", "x y"] {
            headers.insert(axum::http::header::HOST, odd.parse().unwrap());
            assert_eq!(base(None, &headers), "", "{odd}");
        }
    }

    #[test]
    fn a_url_holds_the_given_parameters_encoded() {
        let u = url(
            "/fhir/r4/Observation",
            &[("site", Some("s 1&x=ü".into())), ("gw", None), ("_count", Some("10".into()))],
        );
        assert_eq!(u, "/fhir/r4/Observation?site=s%201%26x%3D%C3%BC&_count=10");
        assert_eq!(url("/p", &[("a", None)]), "/p");
    }
}
