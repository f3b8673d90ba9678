//! `GET /fhir/r4/Device?identifier=`: the devices an Observation refers to by identifier (its
//! `device`, a PhdDevice, and its gatewayDevice extension, a PhgDevice), so that a client can
//! resolve those logical references. A device is found when the client's grants open a reading
//! or a waveform chunk of it; a gateway, when they open a message it signed.

use super::resources::{gateway_device, phd_device, urn, ID_DEVICE, ID_GATEWAY};
use super::rows::granted;
use super::{admit, db_error, fhir_json, ignored_outcome, outcome};
use crate::http::AppState;
use crate::search_page;
use crate::view::access::Grant;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct DeviceQuery {
    /// `system|value` or `value`, several separated by commas (see [`named`]).
    identifier: Option<String>,
}

/// A Device search names at most this many identifiers.
const MAX_IDENTIFIERS: usize = 100;

/// `GET /fhir/r4/Device?identifier=`: a searchset of the devices named that the client's grants
/// open something of (a device an Observation refers to by identifier is found by it).
pub async fn search(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<DeviceQuery>, QueryRejection>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let taken = crate::fhir_capability::DEVICE_PARAMETERS;
    let (v, q, ignored) = match admit(&s, &headers, q, &pairs, "the Device search", taken).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    // Every device the hub has heard of, across every site, is not a search to answer at once.
    let Some(identifier) = q.identifier else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the Device search takes identifier (as an Observation refers to its device)",
        );
    };
    let named = named(&identifier);
    if named.len() > MAX_IDENTIFIERS {
        return outcome(StatusCode::BAD_REQUEST, "invalid", &format!("identifier: at most {MAX_IDENTIFIERS} values"));
    }
    // Each device once, however often it is named.
    let named: Vec<&Named> =
        named.iter().enumerate().filter(|(i, n)| !named[..*i].contains(n)).map(|(_, n)| n).collect();
    let db = s.db.get().await;
    let mut entries = Vec::new();
    for n in named {
        match find(&db, n, &v.grants).await {
            Ok(Some(device)) => entries.push(entry(device)),
            Ok(None) => {}
            Err(e) => return db_error(e),
        }
    }
    let total = entries.len();
    entries.extend(ignored_outcome("the Device search", &ignored));
    let base = search_page::base(s.public_url.as_deref(), &headers);
    let own = search_page::url(&format!("{base}/fhir/r4/Device"), &[("identifier", Some(identifier))]);
    fhir_json(json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": own}],
        "entry": entries,
    }))
}

/// A device the search names: a peripheral at a gateway, or the gateway itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Peripheral { site: String, gw: String, dev: String },
    Gateway { site: String, gw: String },
}

/// The devices an `identifier` search value names (`system|value`, or a value alone; several
/// separated by commas). Identifiers are `site/gw/dev` (system `urn:spokegate:device`) and
/// `site/gw` (`urn:spokegate:gateway`); topic levels hold no `/`, so a value without a system is
/// told apart by its parts. Another system, or a value of another shape, names nothing.
pub fn named(identifier: &str) -> Vec<Named> {
    crate::search_values::any_of(identifier)
        .into_iter()
        .filter_map(|token| {
            let (system, value) = match token.split_once('|') {
                Some((s, v)) => (Some(s.to_string()), v.to_string()),
                None => (None, token),
            };
            let parts: Vec<&str> = value.split('/').collect();
            if parts.iter().any(|p| p.is_empty()) {
                return None;
            }
            match (system.as_deref(), parts.as_slice()) {
                (Some(ID_DEVICE) | None, [site, gw, dev]) => {
                    Some(Named::Peripheral { site: site.to_string(), gw: gw.to_string(), dev: dev.to_string() })
                }
                (Some(ID_GATEWAY) | None, [site, gw]) => {
                    Some(Named::Gateway { site: site.to_string(), gw: gw.to_string() })
                }
                _ => None,
            }
        })
        .collect()
}

/// The resource of a named device if `grants` open something of it (`None`: not found).
pub async fn find(
    db: &tokio_postgres::Client,
    named: &Named,
    grants: &[Grant],
) -> Result<Option<Value>, tokio_postgres::Error> {
    type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
    match named {
        Named::Peripheral { site, gw, dev } => {
            let (open_o, grant_params) = granted(grants, "o.", 4);
            let (open_w, _) = granted(grants, "w.", 4);
            let mut params: Vec<Param> = vec![site, gw, dev];
            params.extend(grant_params.iter().map(|p| p as Param));
            // Its profile as its latest reading names it, else a chunk of its waveform's message.
            let sql = format!(
                "(SELECT o.prof FROM observations o WHERE o.site = $1 AND o.gw = $2 AND o.dev = $3 AND {open_o}
                  ORDER BY o.t_us DESC LIMIT 1)
                 UNION ALL
                 (SELECT m.prof FROM wave_chunks w JOIN messages m ON m.id = w.message_id
                  WHERE w.site = $1 AND w.gw = $2 AND w.dev = $3 AND {open_w} LIMIT 1)
                 LIMIT 1"
            );
            let row = db.query_opt(&sql, &params).await?;
            Ok(row.map(|r| phd_device(site, gw, dev, r.get::<_, Option<String>>(0).as_deref())))
        }
        Named::Gateway { site, gw } => {
            let (open, grant_params) = granted(grants, "m.", 3);
            let mut params: Vec<Param> = vec![site, gw];
            params.extend(grant_params.iter().map(|p| p as Param));
            let sql = format!("SELECT 1 FROM messages m WHERE m.site = $1 AND m.gw = $2 AND {open} LIMIT 1");
            Ok(db.query_opt(&sql, &params).await?.map(|_| gateway_device(site, gw)))
        }
    }
}

/// A searchset entry for a found device, with the fullUrl a transaction gives it.
pub fn entry(device: Value) -> Value {
    let system = device["identifier"][0]["system"].as_str().unwrap_or("").to_string();
    let value = device["identifier"][0]["value"].as_str().unwrap_or("").to_string();
    json!({"fullUrl": urn(&format!("{system}|{value}")), "resource": device, "search": {"mode": "match"}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identifier_names_a_peripheral_or_a_gateway_by_its_system_or_its_shape() {
        let p = |s: &str, g: &str, d: &str| Named::Peripheral { site: s.into(), gw: g.into(), dev: d.into() };
        let g = |s: &str, gw: &str| Named::Gateway { site: s.into(), gw: gw.into() };
        assert_eq!(named("urn:spokegate:device|site-1/gw-a/ecg-1"), [p("site-1", "gw-a", "ecg-1")]);
        assert_eq!(named("urn:spokegate:gateway|site-1/gw-a"), [g("site-1", "gw-a")]);
        assert_eq!(named("site-1/gw-a/ecg-1,site-1/gw-a"), [p("site-1", "gw-a", "ecg-1"), g("site-1", "gw-a")]);
        for nothing in [
            "urn:spokegate:device|site-1/gw-a",
            "urn:spokegate:gateway|site-1/gw-a/ecg-1",
            "http://example.org|site-1/gw-a",
            "site-1",
            "site-1//ecg-1",
            "a/b/c/d",
            "",
            "|",
        ] {
            assert_eq!(named(nothing), [], "{nothing}");
        }
    }
}
