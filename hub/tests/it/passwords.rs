//! Password checks cost an argon2id check each (tens of milliseconds of a core, by design), and
//! the FHIR API and the sign-in form ask for them. A FHIR client polling with HTTP Basic
//! credentials pays one check, not one a request, until its password changes; a name that failed
//! five times in a minute is refused at once (429, `Retry-After`), even with the right password,
//! costing no check, while other users, and a client that signed in with that name before the
//! guessing, go on. (Before, every request ran a check, and guessing
//! was limited by nothing but the check's cost.) The failures are counted in PostgreSQL, for all
//! instances of the hub together (before, each instance counted its own: behind a load balancer
//! with N instances, a guesser had 5 x N tries a window).

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

/// Moves every failure window a minute and a second into the past, as that much time would.
async fn age_failures(db: &TestDb) {
    db.client().await.execute("UPDATE password_failures SET since = since - interval '61 seconds'", &[]).await.unwrap();
}

async fn failure_rows(db: &TestDb, name: &str) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT coalesce(sum(failures), 0)::bigint FROM password_failures
             WHERE name_sha256 = encode(sha256($1::bytea), 'hex')",
            &[&name.as_bytes()],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_at_every_instance_count_together_and_end_with_their_window() {
    let rig = CraftedRig::start("shared-a").await;
    let second = rig.hub.serve("shared-b");
    second.ready().await;
    let b = &second;
    let a = &rig.instance;
    rig.hub.user("dr-sen", PASSWORD, &[("site-1", None, None)]);
    let checks = || async {
        a.metric("spokegate_hub_password_checks_total").await + b.metric("spokegate_hub_password_checks_total").await
    };

    // Invented names fail at instance a; their windows end (the rows are aged, as a minute
    // would); instance b's first failure deletes them and keeps its own.
    for ghost in ["ghost-1", "ghost-2"] {
        assert_eq!(fhir(a.http, ghost, "x").await.0, 401);
    }
    assert_eq!(rig.db.count("SELECT count(*) FROM password_failures").await, 2);
    age_failures(&rig.db).await;
    assert_eq!(fhir(b.http, "ghost-3", "x").await.0, 401);
    assert_eq!(rig.db.count("SELECT count(*) FROM password_failures").await, 1);
    assert_eq!(failure_rows(&rig.db, "ghost-3").await, 1, "the live window stays");

    // Guesses spread over both instances: three at a, two at b; then both refuse the name,
    // unchecked, even with the right password.
    for (instance, guess) in [(a, "a"), (b, "b"), (a, "c"), (b, "d"), (a, "e")] {
        assert_eq!(fhir(instance.http, "dr-sen", guess).await.0, 401);
    }
    assert_eq!(failure_rows(&rig.db, "dr-sen").await, 5);
    let before = checks().await;
    for instance in [a, b] {
        let (status, head) = fhir(instance.http, "dr-sen", PASSWORD).await;
        assert_eq!(status, 429, "{head}");
    }
    assert_eq!(checks().await, before, "a refused name costs no check at any instance");

    // The window ends (aged as above): the right password is checked and matches, and the
    // count is forgotten.
    age_failures(&rig.db).await;
    assert_eq!(fhir(b.http, "dr-sen", PASSWORD).await.0, 200);
    assert_eq!(checks().await, before + 1.0);
    assert_eq!(failure_rows(&rig.db, "dr-sen").await, 0);
    // A failure after the window starts a new one: four more are still allowed a check.
    rig.db
        .client()
        .await
        .execute(
            "INSERT INTO password_failures
             VALUES (encode(sha256(convert_to('dr-sen', 'UTF8')), 'hex'), 5, now() - interval '61 seconds')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(fhir(a.http, "dr-sen", "f").await.0, 401);
    assert_eq!(failure_rows(&rig.db, "dr-sen").await, 1, "an ended window starts again at one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_name_a_client_sends_is_counted_and_refused_not_an_error() {
    let rig = CraftedRig::start("odd-names").await;
    let port = rig.instance.http;
    // U+0000 (PostgreSQL's text cannot hold it) and a name longer than an index row may be.
    let long = "n".repeat(10_000);
    for name in ["dr\0x", long.as_str()] {
        for _ in 0..5 {
            assert_eq!(fhir(port, name, "guess").await.0, 401);
        }
        assert_eq!(failure_rows(&rig.db, name).await, 5);
        assert_eq!(fhir(port, name, "guess").await.0, 429);
    }
    assert_eq!(rig.instance.metric("spokegate_hub_password_throttled_total").await, 2.0);
}

/// The README's figures: five failures a minute refuse a name; two checks run at once.
const FAILURES: f64 = 5.0;
const AT_ONCE: f64 = 2.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_together_are_checked_as_if_they_came_one_after_another() {
    use futures::future::join_all;
    let rig = CraftedRig::start("together").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    rig.hub.user("dr-das", PASSWORD, &[("site-1", None, None)]);
    let port = rig.instance.http;
    let checks = || async { rig.instance.metric("spokegate_hub_password_checks_total").await };

    // A client's first eight requests, sent together: the checks of the first turn (two run at
    // once), the rest remembered.
    let answers = join_all((0..8).map(|_| fhir(port, "his", PASSWORD))).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let first = checks().await;
    assert!((1.0..=AT_ONCE).contains(&first), "{first} checks for a client's requests sent together");

    // Twenty guesses at a name, sent together: checked until the fifth failure is recorded
    // (the checks in progress then finish), the rest refused unchecked.
    let guesses: Vec<String> = (0..20).map(|i| format!("guess {i}")).collect();
    let answers = join_all(guesses.iter().map(|g| fhir(port, "dr-das", g))).await;
    let wrong = answers.iter().filter(|(s, _)| *s == 401).count() as f64;
    let refused = answers.iter().filter(|(s, _)| *s == 429).count() as f64;
    assert_eq!(wrong + refused, 20.0, "{answers:?}");
    let checked = checks().await - first;
    assert_eq!(checked, wrong, "every check a wrong password");
    assert!((FAILURES..=FAILURES + AT_ONCE - 1.0).contains(&checked), "{checked} checks for 20 guesses");
}
