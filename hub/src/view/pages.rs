//! The HTML: sign-in, the list of what a user may open, and the consult/gateway page (one page,
//! two scopes) with its script and style built into the binary.

use super::access::COOKIE;
use super::accounts;
use super::api::{may_open, viewer};
use super::passwords::Verdict;
use crate::http::AppState;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use spokegate::consult_view::{esc, page_html, Scope, LOGIN_HTML};

/// Percent-encodes a path segment.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Where to go after signing in: a path of this service only.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".into(),
    }
}

fn to_login(path: &str) -> Response {
    Redirect::to(&format!("/login?next={}", seg(path))).into_response()
}

#[derive(serde::Deserialize)]
pub struct Next {
    next: Option<String>,
}

fn login_page(next: &str, message: &str) -> String {
    LOGIN_HTML.replace("{{NEXT}}", &esc(next)).replace("{{MESSAGE}}", &esc(message))
}

pub async fn login_form(Query(q): Query<Next>) -> Html<String> {
    Html(login_page(&safe_next(q.next.as_deref()), ""))
}

#[derive(serde::Deserialize)]
pub struct Login {
    name: String,
    password: String,
    next: Option<String>,
}

pub async fn login(State(s): State<AppState>, Form(f): Form<Login>) -> Response {
    let next = safe_next(f.next.as_deref());
    match accounts::sign_in(&*s.db.get().await, &s.view.passwords, f.name.trim(), &f.password).await {
        Ok(Ok((token, _))) => {
            let cookie = format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                accounts::SESSION_HOURS * 3600
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Ok(Err(Verdict::Throttled(wait))) => {
            tracing::warn!(user = f.name.trim(), "view: sign-in refused unchecked: too many failures");
            let secs = wait.as_secs() + 1;
            let text = format!("Too many failed sign-ins for this name: try again in {secs} s.");
            let retry = [(header::RETRY_AFTER, secs.to_string())];
            (StatusCode::TOO_MANY_REQUESTS, retry, Html(login_page(&next, &text))).into_response()
        }
        Ok(Err(_)) => {
            tracing::info!(user = f.name.trim(), "view: sign-in refused");
            (StatusCode::UNAUTHORIZED, Html(login_page(&next, "Wrong name or password."))).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n")).into_response(),
    }
}

pub async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = super::access::cookie(&headers, COOKIE) {
        let _ = accounts::sign_out(&*s.db.get().await, token).await;
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{}</title><link rel=\"stylesheet\" \
         href=\"/assets/view.css\"></head><body><header><b>spokegate hub</b> <span>{}</span>\
         <form method=\"post\" action=\"/logout\"><button>Sign out</button></form></header><main class=\"list\">{body}</main></body></html>",
        esc(title),
        esc(title)
    ))
}

/// What the user may open: the consults (newest first) and the gateways.
pub async fn index(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(v) = viewer(&s, &headers).await else { return to_login("/") };
    let consults =
        s.db.get()
            .await
            .query(
                "SELECT consult, site, gw, max(since_us) AS since FROM consults WHERE consult IS NOT NULL
             GROUP BY consult, site, gw ORDER BY since DESC LIMIT 500",
                &[],
            )
            .await
            .unwrap_or_default();
    let gateways =
        s.db.get()
            .await
            .query("SELECT site, gw FROM trusted_keys WHERE site IS NOT NULL GROUP BY site, gw ORDER BY site, gw", &[])
            .await
            .unwrap_or_default();
    let mut body = format!("<p>Signed in as <b>{}</b>.</p><h2>Consults</h2><ul>", esc(&v.name));
    for r in consults.iter().filter(|r| v.may_see(r.get(1), r.get(2), Some(r.get(0)))) {
        let (c, site, gw): (&str, &str, &str) = (r.get(0), r.get(1), r.get(2));
        let since = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.get::<_, i64>(3)) * 1000)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        body.push_str(&format!(
            "<li><a href=\"/consult/{}\">{}</a> <small>{} / {} · since {}</small></li>",
            seg(c),
            esc(c),
            esc(site),
            esc(gw),
            esc(&since)
        ));
    }
    body.push_str("</ul><h2>Gateways</h2><ul>");
    for r in gateways.iter().filter(|r| v.may_open_gateway(r.get(0), r.get(1))) {
        let (site, gw): (&str, &str) = (r.get(0), r.get(1));
        body.push_str(&format!(
            "<li><a href=\"/gateway/{}/{}\">{} / {}</a></li>",
            seg(site),
            seg(gw),
            esc(site),
            esc(gw)
        ));
    }
    body.push_str("</ul>");
    page("Consults", &body).into_response()
}

async fn scope_page(s: AppState, headers: HeaderMap, scope: Scope, path: String) -> Response {
    let Some(v) = viewer(&s, &headers).await else { return to_login(&path) };
    if !may_open(&s, &v, &scope).await {
        return (StatusCode::NOT_FOUND, page("Not found", "<p>Nothing here that you may see.</p>")).into_response();
    }
    let html = page_html(&scope, &v.csrf, Some(&v.name));
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

pub async fn consult(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let path = format!("/consult/{}", seg(&id));
    scope_page(s, headers, Scope::Consult(id), path).await
}

pub async fn gateway(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((site, gw)): Path<(String, String)>,
) -> Response {
    let path = format!("/gateway/{}/{}", seg(&site), seg(&gw));
    scope_page(s, headers, Scope::Gateway { site, gw }, path).await
}

pub async fn asset(Path(name): Path<String>) -> Response {
    spokegate::consult_view::asset(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/consult/C1")), "/consult/C1");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", "consult"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("TELE 7/a"), "TELE%207%2Fa");
    }
}
