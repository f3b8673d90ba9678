//! The command line: a bad configuration is refused with its place and exit 78, migrations
//! apply once, a database of another schema version is refused.

use crate::support::*;

#[test]
fn a_bad_config_is_refused_with_file_line_column_and_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hub.toml");
    let base = "[hub]\nid = \"h\"\nkey = \"k\"\n[database]\nurl = \"host=127.0.0.1\"\n[input.mqtt]\n";
    // `serve` with this configuration: its exit code and what it said.
    let serve = |text: &str| {
        std::fs::write(&cfg, format!("{base}{text}")).unwrap();
        hub_cli(&["serve", "--config", cfg.to_str().unwrap()]).unwrap_err()
    };
    let (code, err) = serve("url = \"http://x\"\nclient_id = \"a\"\n");
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(&format!("{}:6:1: `input.mqtt.url`", cfg.display())), "{err}");
    let (code, _) = hub_cli(&["serve", "--config", dir.path().join("missing.toml").to_str().unwrap()]).unwrap_err();
    assert_eq!(code, 78);
    // A public address that is not one.
    let (code, err) = serve("url = \"mqtt://x\"\nclient_id = \"a\"\n[http]\npublic_url = \"hub.example.org\"\n");
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(&format!("{}:10:14: `http.public_url`", cfg.display())), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_and_serve_refuses_an_unmigrated_database() {
    let db = TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hub.toml");
    std::fs::write(
        &cfg,
        format!(
            "[hub]\nid = \"h\"\nkey = \"{}/h.key\"\n[database]\nurl = \"{}\"\n[input.mqtt]\nurl = \"mqtt://127.0.0.1:1\"\nclient_id = \"a\"\n",
            dir.path().display(),
            db.url
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let (code, err) = hub_cli(&["serve", "--config", cfg]).unwrap_err();
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("run `spokegate-hub migrate`"), "{err}");
    // Every migration shipped in hub/migrations/, numbered from 1.
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap().count() as i32;
    let every: Vec<i32> = (1..=shipped).collect();
    assert!(shipped >= 3, "{shipped} migrations");
    assert!(hub_cli(&["migrate", "--config", cfg]).unwrap().contains(&format!("applied now: {every:?}")));
    assert!(hub_cli(&["migrate", "--config", cfg]).unwrap().contains("applied now: []"));
    assert_eq!(db.count("SELECT count(*) FROM schema_migrations").await, every.len() as i64);
    // Users: a grant for nobody is refused (67), a short password too (65), and `list` says what
    // each may see.
    let (code, err) = hub_cli(&["users", "--config", cfg, "grant", "nobody", "--site", "s1"]).unwrap_err();
    assert_eq!(code, 67, "{err}");
    let short = std::process::Command::new(hub_binary())
        .args(["users", "--config", cfg, "add", "dr-a"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(65), "{short:?}");
    let setup = HubSetup {
        dir: tempfile::tempdir().unwrap(),
        db_url: db.url.clone(),
        input: "[input.mqtt]\nurl = \"mqtt://127.0.0.1:1\"\nclient_id = \"a\"\n".into(),
        http: String::new(),
        sections: String::new(),
    };
    setup.user("dr-a", "a long enough password", &[("s1", None, Some("C-1"))]);
    let list = hub_cli(&["users", "--config", cfg, "list"]).unwrap();
    assert!(list.contains("dr-a  site s1, every gateway, consult C-1"), "{list}");
    let hash: String =
        db.client().await.query_one("SELECT password_hash FROM users WHERE name = 'dr-a'", &[]).await.unwrap().get(0);
    assert!(hash.starts_with("$argon2id$") && !hash.contains("a long enough password"), "{hash}");
    let c = db.client().await;
    c.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')", &[]).await.unwrap();
    let (code, err) = hub_cli(&["keys", "--config", cfg, "list"]).unwrap_err();
    assert_eq!(code, 78);
    assert!(err.contains("version 99"), "{err}");
}
