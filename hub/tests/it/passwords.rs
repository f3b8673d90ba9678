//! Password checks cost an argon2id check each (tens of milliseconds of a core, by design), and
//! the FHIR API and the sign-in form ask for them. A FHIR client polling with HTTP Basic
//! credentials pays one check, not one a request, until its password changes; a name that failed
//! five times in a minute is refused at once (429, `Retry-After`), even with the right password,
//! costing no check, while other users, and a client that signed in with that name before the
//! guessing, go on. (Before, every request ran a check, and guessing
//! was limited by nothing but the check's cost.)

use crate::support::*;

const PASSWORD: &str = "a long system password";

async fn fhir(port: u16, name: &str, password: &str) -> (u16, String) {
    let (status, head, _) =
        http_request(port, "GET", "/fhir/r4/Observation?site=site-1", &basic(name, password), "").await;
    (status, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_client_is_checked_once_and_a_guessed_name_is_refused_unchecked() {
    let rig = CraftedRig::start("passwords").await;
    rig.hub.user("his-system", PASSWORD, &[("site-1", None, None)]);
    rig.hub.user("dr-rao", PASSWORD, &[("site-1", None, None)]);
    let (port, instance) = (rig.instance.http, &rig.instance);
    let checks = || async { instance.metric("spokegate_hub_password_checks_total").await };

    // Polling: five requests, one check.
    for _ in 0..5 {
        assert_eq!(fhir(port, "his-system", PASSWORD).await.0, 200);
    }
    assert_eq!(checks().await, 1.0, "a remembered match is not checked again");
    // A new password: the old one no longer opens anything (checked again, and refused).
    rig.hub.user("his-system", "the new system password", &[]);
    assert_eq!(fhir(port, "his-system", PASSWORD).await.0, 401);
    assert_eq!(fhir(port, "his-system", "the new system password").await.0, 200);
    assert_eq!(checks().await, 3.0);

    // Guessing at a name nobody signed in with: five failures, then even the right password is
    // refused unchecked.
    rig.hub.user("dr-new", PASSWORD, &[("site-1", None, None)]);
    for guess in ["a", "b", "c", "d", "e"] {
        assert_eq!(fhir(port, "dr-new", guess).await.0, 401);
    }
    let before = checks().await;
    let (status, head) = fhir(port, "dr-new", PASSWORD).await;
    assert_eq!(status, 429, "{head}");
    let retry: u64 = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after: ").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {head}"));
    assert!((1..=61).contains(&retry), "{retry}");
    // The sign-in form says the same for that name.
    let form = format!("name=dr-new&password={}&next=%2F", PASSWORD.replace(' ', "+"));
    let (status, _, page) =
        http_request(port, "POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n", &form).await;
    assert_eq!(status, 429);
    assert!(page.contains("Too many failed sign-ins"), "{page}");
    assert_eq!(checks().await, before, "a refused name costs no check");
    assert_eq!(instance.metric("spokegate_hub_password_throttled_total").await, 2.0);
    // Another user is not affected, nor a client that signed in with a name being guessed at.
    assert_eq!(fhir(port, "dr-rao", PASSWORD).await.0, 200);
    for guess in ["f", "g", "h", "i", "j"] {
        assert_eq!(fhir(port, "his-system", guess).await.0, 401);
    }
    assert_eq!(fhir(port, "his-system", "the new system password").await.0, 200);
    assert_eq!(fhir(port, "his-system", "k").await.0, 429);
}
