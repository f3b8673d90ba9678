//! Who is looking, and what they may see. A viewer is a signed-in hub user (a session cookie)
//! or, behind a single sign-on proxy, the user the proxy names in a configured header. A grant
//! opens a site, one gateway of it, or one consult; everything else is as if it did not exist.

use super::accounts;
use super::passwords::{PasswordChecks, Verdict};
use axum::http::HeaderMap;
use tokio_postgres::Client;

/// The session cookie's name.
pub const COOKIE: &str = "sghub_session";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub site: String,
    /// `None`: every gateway of the site.
    pub gw: Option<String>,
    /// `None`: every consult (and readings outside any).
    pub consult: Option<String>,
}

impl Grant {
    fn covers_gateway(&self, site: &str, gw: &str) -> bool {
        self.site == site && self.gw.as_deref().is_none_or(|g| g == gw)
    }
}

#[derive(Debug, Clone)]
pub struct Viewer {
    pub name: String,
    /// Repeated in the `x-csrf-token` header of every request that changes anything.
    pub csrf: String,
    pub grants: Vec<Grant>,
}

impl Viewer {
    /// May see what gateway `site/gw` signed while bound to `consult`.
    pub fn may_see(&self, site: &str, gw: &str, consult: Option<&str>) -> bool {
        self.grants
            .iter()
            .any(|g| g.covers_gateway(site, gw) && g.consult.as_deref().is_none_or(|c| Some(c) == consult))
    }

    /// May ask gateway `site/gw` for something (any grant on it, a consult grant included: the
    /// doctor of a consult asks its spoke for a picture).
    pub fn may_ask(&self, site: &str, gw: &str) -> bool {
        self.grants.iter().any(|g| g.covers_gateway(site, gw))
    }

    /// May open the page of the whole gateway (a grant without a consult on it).
    pub fn may_open_gateway(&self, site: &str, gw: &str) -> bool {
        self.grants.iter().any(|g| g.covers_gateway(site, gw) && g.consult.is_none())
    }
}

/// How the service learns who is looking.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Set when a single sign-on proxy in front names the user in this header (and the service
    /// listens only where the proxy reaches it).
    pub trusted_user_header: Option<String>,
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Access {
    /// The viewer of a request, or `None` (not signed in, session expired, unknown user).
    pub async fn viewer(&self, db: &Client, headers: &HeaderMap, csrf_secret: &[u8]) -> Option<Viewer> {
        let (name, csrf) = match &self.trusted_user_header {
            Some(h) => {
                let name = headers.get(h.as_str())?.to_str().ok()?.trim().to_string();
                if name.is_empty() || !accounts::exists(db, &name).await.ok()? {
                    return None;
                }
                let csrf = accounts::proxy_csrf(csrf_secret, &name);
                (name, csrf)
            }
            None => accounts::session(db, cookie(headers, COOKIE)?).await.ok()??,
        };
        let grants = accounts::grants(db, &name).await.ok()?;
        Some(Viewer { name, csrf, grants })
    }

    /// The client of a system-to-system request (the FHIR API): a viewer as above, or, unless a
    /// single sign-on proxy names the users, a hub user by HTTP Basic credentials (checked through
    /// `checks`). It may read, never command (no CSRF token). `Err` says why not.
    pub async fn client(
        &self,
        db: &Client,
        headers: &HeaderMap,
        csrf_secret: &[u8],
        checks: &PasswordChecks,
    ) -> Result<Viewer, Refusal> {
        if let Some(v) = self.viewer(db, headers, csrf_secret).await {
            return Ok(v);
        }
        if self.trusted_user_header.is_some() {
            return Err(Refusal::Credentials);
        }
        let (name, password) = basic_credentials(headers).ok_or(Refusal::Credentials)?;
        let unavailable = |e: tokio_postgres::Error| {
            tracing::warn!(error = %e, "credentials not checked: the database did not answer");
            Refusal::Unavailable
        };
        match accounts::password_is(db, checks, &name, &password).await.map_err(unavailable)? {
            Verdict::Match => {}
            Verdict::Throttled(wait) => return Err(Refusal::Throttled(wait)),
            Verdict::NoMatch => return Err(Refusal::Credentials),
        }
        let grants = accounts::grants(db, &name).await.map_err(unavailable)?;
        Ok(Viewer { name, csrf: String::new(), grants })
    }
}

/// Why a system-to-system request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No valid credentials.
    Credentials,
    /// Too many failures for the name: how long until it may try again.
    Throttled(std::time::Duration),
    /// The credentials could not be checked (the database did not answer): not the client's fault.
    Unavailable,
}

/// The user and password of an `Authorization: Basic` header (RFC 7617).
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    spokegate::ui::auth::basic_credentials(headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(grants: &[(&str, Option<&str>, Option<&str>)]) -> Viewer {
        Viewer {
            name: "dr".into(),
            csrf: String::new(),
            grants: grants
                .iter()
                .map(|(s, g, c)| Grant { site: s.to_string(), gw: g.map(Into::into), consult: c.map(Into::into) })
                .collect(),
        }
    }

    #[test]
    fn a_grant_opens_its_site_gateway_or_consult_and_nothing_else() {
        let site = viewer(&[("phc-1", None, None)]);
        assert!(site.may_see("phc-1", "gw-a", Some("C1")) && site.may_see("phc-1", "gw-b", None));
        assert!(!site.may_see("phc-2", "gw-a", Some("C1")));
        assert!(site.may_open_gateway("phc-1", "gw-a"));

        let gw = viewer(&[("phc-1", Some("gw-a"), None)]);
        assert!(gw.may_see("phc-1", "gw-a", None) && !gw.may_see("phc-1", "gw-b", None));

        let consult = viewer(&[("phc-1", Some("gw-a"), Some("C1"))]);
        assert!(consult.may_see("phc-1", "gw-a", Some("C1")));
        assert!(!consult.may_see("phc-1", "gw-a", Some("C2")) && !consult.may_see("phc-1", "gw-a", None));
        assert!(consult.may_ask("phc-1", "gw-a") && !consult.may_ask("phc-1", "gw-b"));
        assert!(!consult.may_open_gateway("phc-1", "gw-a"));

        assert!(!viewer(&[]).may_see("phc-1", "gw-a", Some("C1")));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; sghub_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
