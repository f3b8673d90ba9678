//! The command line: a bad configuration is refused with its place and exit 78, migrations
//! apply once, a database of another schema version is refused.

use crate::support::*;

#[test]
fn a_bad_config_is_refused_with_file_line_column_and_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hub.toml");
    std::fs::write(
        &cfg,
        "[hub]\nid = \"h\"\nkey = \"k\"\n[database]\nurl = \"host=127.0.0.1\"\n[input.mqtt]\nurl = \"http://x\"\nclient_id = \"a\"\n",
    )
    .unwrap();
    let (code, err) = hub_cli(&["serve", "--config", cfg.to_str().unwrap()]).unwrap_err();
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(&format!("{}:6:1: `input.mqtt.url`", cfg.display())), "{err}");
    let (code, _) = hub_cli(&["serve", "--config", dir.path().join("missing.toml").to_str().unwrap()]).unwrap_err();
    assert_eq!(code, 78);
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
    assert!(hub_cli(&["migrate", "--config", cfg]).unwrap().contains("applied now: [1]"));
    assert!(hub_cli(&["migrate", "--config", cfg]).unwrap().contains("applied now: []"));
    assert_eq!(db.count("SELECT count(*) FROM schema_migrations").await, 1);
    let c = db.client().await;
    c.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')", &[]).await.unwrap();
    let (code, err) = hub_cli(&["keys", "--config", cfg, "list"]).unwrap_err();
    assert_eq!(code, 78);
    assert!(err.contains("version 99"), "{err}");
}
