//! The one format the hub's FHIR API speaks, JSON (`application/fhir+json`): a client that asks
//! for another one (`_format=xml`, or an `Accept` header that takes no JSON) is told so with 406
//! rather than given what it cannot read.

use axum::http::HeaderMap;

/// Media types (and `_format` short names) the API answers in.
const JSON: &[&str] = &["json", "application/json", "application/fhir+json", "application/json+fhir"];

/// Why the request's format cannot be served, if it cannot: `_format` wins over `Accept`.
pub fn refused(headers: &HeaderMap, format: Option<&str>) -> Option<String> {
    if let Some(f) = format {
        let wanted = f.split(';').next().unwrap_or("").trim();
        return (!JSON.iter().any(|j| j.eq_ignore_ascii_case(wanted)))
            .then(|| format!("_format `{f}`: this server answers in application/fhir+json only"));
    }
    let accept: Vec<&str> = headers.get_all("accept").iter().filter_map(|v| v.to_str().ok()).collect();
    let ranges: Vec<&str> = accept.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|r| !r.is_empty()).collect();
    if ranges.is_empty() {
        return None;
    }
    let takes_json = ranges.iter().any(|r| {
        let mut parts = r.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        // A range given weight 0 is refused by the client.
        let refused = parts.any(|p| weight(p) == Some(0.0));
        !refused
            && (media == "*/*"
                || media.eq_ignore_ascii_case("application/*")
                || JSON.iter().any(|j| j.eq_ignore_ascii_case(media)))
    });
    (!takes_json).then(|| format!("Accept `{}`: this server answers in application/fhir+json only", accept.join(", ")))
}

/// The weight a `q=` parameter of an Accept range gives.
fn weight(parameter: &str) -> Option<f32> {
    let (name, value) = parameter.split_once('=')?;
    name.trim().eq_ignore_ascii_case("q").then(|| value.trim().parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("accept", v.parse().unwrap());
        h
    }

    #[test]
    fn json_is_served_and_anything_else_is_refused() {
        let none = HeaderMap::new();
        for ok in ["json", "application/fhir+json", "application/json", "application/fhir+json; fhirVersion=4.0"] {
            assert_eq!(refused(&none, Some(ok)), None, "{ok}");
        }
        for bad in ["xml", "application/fhir+xml", "ttl", ""] {
            assert!(refused(&none, Some(bad)).is_some_and(|why| why.contains("_format")), "{bad}");
        }
        assert_eq!(refused(&none, None), None);
        for ok in [
            "*/*",
            "application/fhir+json",
            "application/fhir+xml, application/fhir+json;q=0.9",
            "application/*",
            "text/html, */*;q=0.8",
        ] {
            assert_eq!(refused(&accept(ok), None), None, "{ok}");
        }
        for bad in ["application/fhir+xml", "text/html", "application/fhir+json;q=0, application/xml"] {
            assert!(refused(&accept(bad), None).is_some_and(|why| why.contains("Accept")), "{bad}");
        }
        // `_format` wins over Accept.
        assert_eq!(refused(&accept("application/fhir+xml"), Some("json")), None);
    }
}
