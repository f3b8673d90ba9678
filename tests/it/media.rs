//! Images end to end (issue #10): folder and camera devices through a real mosquitto to the real
//! `spokegate watch --record`, which joins the signed parts, checks the SHA-256 and writes the
//! image with its sidecar. The blood-smear image is BCCD's (see `src/sim/recordings/SOURCES.md`);
//! the large images are made from it here by scaling it up (their hashes are computed from the
//! bytes the test wrote, never written down).
//!
//! No camera exists on CI machines: the camera tests use the simulated camera (`sim:...`), which
//! serves real JPEG frames through the same `Camera` trait the V4L2 code implements.

use super::harness::*;
use super::large_still;
use super::media_support::*;
use spokegate::model::Body;
use spokegate::sim::recordings::BLOOD_SMEAR_JPEG as SMEAR;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A gateway with one image device (`transport` is its `folder = ..` or `camera = ..` line) and
/// extra sections.
fn scope_config(gw: &GatewayDir, port: u16, transport: &str, extra_gateway: &str, sections: &str) -> PathBuf {
    let path = gw.config_with(port, &[], extra_gateway, sections);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("\n[[device]]\nid = \"scope\"\nprofile = \"usb-microscope\"\n{transport}\n"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `SMEAR` with an Exif APP1 segment after its APP0: GPS position, artist, owner and a comment
/// (written with kamadak-exif, an independent implementation).
fn exif_tagged() -> Vec<u8> {
    use exif::experimental::Writer;
    use exif::{Field, In, Rational, Tag, Value};
    let ascii = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
    let rational = |v: &[u32]| Value::Rational(v.iter().map(|n| Rational::from((*n, 1))).collect());
    let fields = [
        Field { tag: Tag::Artist, ifd_num: In::PRIMARY, value: ascii("Dr A. Example") },
        Field { tag: Tag::Copyright, ifd_num: In::PRIMARY, value: ascii("Example Health Centre") },
        Field { tag: Tag::ImageDescription, ifd_num: In::PRIMARY, value: ascii("patient Jane Doe, smear 2") },
        Field { tag: Tag::GPSLatitudeRef, ifd_num: In::PRIMARY, value: ascii("N") },
        Field { tag: Tag::GPSLatitude, ifd_num: In::PRIMARY, value: rational(&[23, 48, 10]) },
        Field { tag: Tag::GPSLongitudeRef, ifd_num: In::PRIMARY, value: ascii("E") },
        Field { tag: Tag::GPSLongitude, ifd_num: In::PRIMARY, value: rational(&[90, 24, 30]) },
    ];
    let mut w = Writer::new();
    for f in &fields {
        w.push_field(f);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    w.write(&mut tiff, false).unwrap();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff.into_inner());
    let app0_len = u16::from_be_bytes([SMEAR[4], SMEAR[5]]) as usize;
    let at = 4 + app0_len;
    let mut out = SMEAR[..at].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&SMEAR[at..]);
    out
}

/// The Exif fields kamadak-exif reads from `jpeg` (none when it has no Exif).
fn exif_tags(jpeg: &[u8]) -> Vec<exif::Tag> {
    match exif::Reader::new().read_from_container(&mut std::io::Cursor::new(jpeg)) {
        Ok(e) => e.fields().map(|f| f.tag).collect(),
        Err(_) => Vec::new(),
    }
}

fn sidecar(image: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(image.with_extension("json")).unwrap()).unwrap()
}

fn media_bodies(bodies: &[Body]) -> Vec<&Body> {
    bodies.iter().filter(|b| b.media.is_some()).collect()
}

fn event_codes(bodies: &[Body]) -> Vec<(String, String)> {
    bodies
        .iter()
        .filter_map(|b| b.event.as_ref())
        .map(|e| {
            let reason = e.data.as_ref().and_then(|d| d.get("reason")).and_then(|r| r.as_str()).unwrap_or("");
            (e.code.clone(), reason.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_images_arrive_whole_without_identifying_metadata_and_bad_files_are_reported() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let folder = gw.path().join("scope-out");
    std::fs::create_dir(&folder).unwrap();
    let config = scope_config(
        &gw,
        broker.port,
        &format!("folder = {{ path = \"{}\", pattern = \"*.jpg\" }}", folder.display()),
        "",
        "[media]\npart_kb = 4\nmax_file_mb = 1\n",
    );
    let record = gw.path().join("record");
    let (mut hub, mut lines) = watch(broker.port, &gw, &record, None).await;
    let mut sub = Subscriber::connect(broker.port, "media-test").await;
    let gateway = RunningGateway::start(&config, gw.key());
    until_line(&mut lines, "watch sees the gateway", PATIENCE, |l| l.contains("gateway online")).await;
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    until_connected(&mut sub).await;
    let consult = spokegate::command::Args::from([("consult".to_string(), serde_json::json!("smear-review-7"))]);
    let done = spokegate::command::socket::request(gw.path(), "consult.start", consult, |_| {}).await.unwrap();
    assert_eq!(done.state, spokegate::model::ReplyState::Done);

    // The vendor software saves: a tagged image, a file written in two halves with a pause
    // longer than the settle time, and files the gateway must refuse.
    let tagged = exif_tagged();
    assert!(exif_tags(&tagged).contains(&exif::Tag::GPSLatitude), "the test image carries GPS");
    std::fs::write(folder.join("field-1.jpg"), &tagged).unwrap();
    std::fs::write(folder.join("notes.txt"), "not an image the pattern takes").unwrap();
    std::fs::write(folder.join("empty.jpg"), b"").unwrap();
    std::fs::write(folder.join("cut.jpg"), &SMEAR[..SMEAR.len() / 2]).unwrap();
    std::fs::File::create(folder.join("huge.jpg")).unwrap().set_len(200 << 20).unwrap();
    {
        use std::io::Write;
        let mut slow = std::fs::File::create(folder.join("field-2.jpg")).unwrap();
        slow.write_all(&SMEAR[..SMEAR.len() / 2]).unwrap();
        slow.flush().unwrap();
        // The writer pauses (shorter than the settle time) with the file open: the gateway must
        // not take the half it can see.
        tokio::time::sleep(spokegate::transport::folder::SETTLE / 2).await;
        slow.write_all(&SMEAR[SMEAR.len() / 2..]).unwrap();
    }

    let keys = gw.keys();
    let images = images_at_hub(&record, 2, PATIENCE).await;
    let parts = 2 * SMEAR.len().div_ceil(4096);
    sub.until_signed("every part and three refusals", &keys, |b| {
        let refused = event_codes(b).iter().filter(|(c, _)| c == "media-refused").count();
        refused >= 3 && media_bodies(b).len() >= parts
    })
    .await;
    let bodies = sub.verified.clone();
    gateway.stop().await;
    unsafe { libc::kill(hub.id().unwrap() as i32, libc::SIGTERM) };
    assert!(hub.wait().await.unwrap().success());
    drain.await.unwrap();

    let mut refused: Vec<String> =
        event_codes(&bodies).into_iter().filter(|(c, _)| c == "media-refused").map(|(_, r)| r).collect();
    refused.sort();
    assert_eq!(refused, ["empty", "too-large", "truncated"]);
    // Both images are the smear's own bytes: the tagged one lost its Exif segment and nothing
    // else, the half-written one was sent once, whole.
    let want_pixels = image::load_from_memory(&tagged).unwrap().to_rgb8();
    for (path, bytes) in &images {
        assert_eq!(bytes.as_slice(), SMEAR, "{}", path.display());
        assert!(exif_tags(bytes).is_empty(), "no Exif left in {}", path.display());
        assert_eq!(image::load_from_memory(bytes).unwrap().to_rgb8(), want_pixels, "pixels untouched");
        let side = sidecar(path);
        let id = path.file_stem().unwrap().to_str().unwrap();
        let parts: Vec<&Body> = bodies.iter().filter(|b| b.media.as_ref().is_some_and(|m| m.id == id)).collect();
        let seqs: BTreeSet<u64> = parts.iter().map(|b| b.seq).collect();
        assert_eq!(seqs.len(), SMEAR.len().div_ceil(4096), "one seq per part");
        assert_eq!(side["seq"], serde_json::json!([seqs.first().unwrap(), seqs.last().unwrap()]));
        assert_eq!(side["site"], "test-site");
        assert_eq!((side["gw"].as_str(), side["dev"].as_str()), (Some("gw-test"), Some("scope")));
        assert_eq!(side["consult"], "smear-review-7");
        assert_eq!(side["kid"], gw.key().public().kid_hex());
        assert_eq!(side["sha256"], spokegate::media::parts::sha256_hex(SMEAR));
        assert_eq!((side["meta"]["width"].as_u64(), side["meta"]["height"].as_u64()), (Some(640), Some(480)));
        assert_eq!(side["captured"], parts[0].t);
    }
    let tagged_sidecar = images
        .keys()
        .map(|p| sidecar(p))
        .find(|s| s["meta"]["removed"].is_array())
        .expect("the tagged image says what went");
    assert_eq!(tagged_sidecar["meta"]["removed"], serde_json::json!(["APP1 Exif"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_capture_is_accepted_then_done_and_its_image_names_the_command() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let hub_key = HubKey::new("hub-scope");
    let config = scope_config(
        &gw,
        broker.port,
        "camera = { path = \"sim:blood-smear\" }",
        "",
        &format!("[hub]\nkeys = [\"{}\"]\n", hub_key.jwk.display()),
    );
    let record = gw.path().join("record");
    let (mut hub, mut lines) = watch(broker.port, &gw, &record, None).await;
    let mut sub = Subscriber::connect(broker.port, "capture-test").await;
    let gateway = RunningGateway::start(&config, gw.key());
    until_line(&mut lines, "watch sees the gateway", PATIENCE, |l| l.contains("gateway online")).await;
    until_connected(&mut sub).await;
    let publisher = Publisher::connect(broker.port, "hub-scope").await;
    publisher.command("capture", hub_key.command("cap-1", "capture", serde_json::json!({ "dev": "scope" }))).await;
    let done = until_line(&mut lines, "the image at the hub", PATIENCE, |l| l.contains("complete")).await;
    assert!(done.contains("SHA-256 checked"), "{done}");
    let keys = {
        let mut k = gw.keys();
        k.insert(hub_key.bound()).unwrap();
        k
    };
    sub.until_signed("accepted, then done", &keys, |b| replies(b, "cap-1").len() >= 2).await;
    let bodies = sub.verified.clone();
    gateway.stop().await;
    unsafe { libc::kill(hub.id().unwrap() as i32, libc::SIGTERM) };
    let _ = hub.wait().await;

    let states: Vec<(&str, &str)> = replies(&bodies, "cap-1");
    assert_eq!(states.iter().map(|(s, _)| *s).collect::<Vec<_>>(), ["accepted", "done"]);
    let done =
        bodies.iter().find(|b| b.reply.as_ref().is_some_and(|r| r.cmd == "cap-1" && r.code == "captured")).unwrap();
    let id = done.reply.as_ref().unwrap().data.as_ref().unwrap()["media"].as_str().unwrap().to_string();
    let parts = media_bodies(&bodies);
    assert!(!parts.is_empty());
    for p in &parts {
        let m = p.media.as_ref().unwrap();
        assert_eq!(m.id, id);
        let meta = m.meta.as_ref().unwrap();
        assert_eq!(meta["cmd"], "cap-1");
        // The default profile drops 5 frames while exposure settles, and keeps the 6th.
        assert_eq!(meta["camera"]["frames_served"], 6);
        assert_eq!(meta["camera"]["format"], "MJPG");
    }
    let images = images_at_hub(&record, 1, PATIENCE).await;
    assert_eq!(images.values().next().unwrap().as_slice(), SMEAR);
    assert_eq!(sidecar(images.keys().next().unwrap())["meta"]["cmd"], "cap-1");
}

#[test]
fn camera_list_and_snap_work_without_a_camera_or_a_daemon() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spokegate")).args(["camera", "list"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let has_video = std::fs::read_dir("/dev")
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("video")))
        .unwrap_or(false);
    if !has_video {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no cameras");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("still.jpg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["camera", "snap", "sim:blood-smear"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&file).unwrap(), SMEAR);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["camera", "snap", "/dev/no-such-camera"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/dev/no-such-camera"), "{out:?}");
}

/// The resume case: the broker goes away at part k of n, the gateway is SIGKILLed at part
/// m, and the hub still gets the image whole, with no part under two seqs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_survives_a_broker_outage_and_a_killed_gateway_mid_transfer() {
    let mut broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let folder = gw.path().join("scope-out");
    std::fs::create_dir(&folder).unwrap();
    let hub_key = HubKey::new("hub-resume");
    // 1 MB in 4 KiB parts at 150 kB/s: about 7 s of parts to interrupt.
    let config = scope_config(
        &gw,
        broker.port,
        &format!("folder = {{ path = \"{}\" }}", folder.display()),
        "",
        &format!(
            "[media]\npart_kb = 4\n[hub]\nkeys = [\"{}\"]\ndelivery = \"hub\"\nack_timeout_secs = 2\n",
            hub_key.jwk.display()
        ),
    );
    limit_rate(&config, 150_000);
    let record = gw.path().join("record");
    let (mut hub, mut lines) = watch(broker.port, &gw, &record, Some(&hub_key)).await;
    let mut sub = Subscriber::connect(broker.port, "resume-test").await;
    let mut daemon = run_binary(&config);
    until_line(&mut lines, "watch sees the gateway", PATIENCE, |l| l.contains("gateway online")).await;
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    until_connected(&mut sub).await;

    let image = large_still::blood_smear_of_at_least(1 << 20);
    std::fs::write(folder.join("large.jpg"), &image).unwrap();
    let n = image.len().div_ceil(4096);
    let parts_seen = |seen: &[(String, Vec<u8>)]| seen.iter().filter(|(t, _)| t.ends_with("/dev/scope/media")).count();
    let k = n / 4;
    sub.until("part k", |seen| parts_seen(seen) >= k).await;
    // The outage: the broker goes away and comes back (a restart without a stop left the first
    // broker running and the second one failing to listen: there was no outage).
    broker.stop();
    broker.restart();
    let before = parts_seen(&sub.seen);
    let m = before + n / 4;
    sub.until("part m after the outage", |seen| parts_seen(seen) >= m).await;
    drop(daemon); // SIGKILL
    daemon = run_binary(&config);
    let images = images_at_hub(&record, 1, Duration::from_secs(90)).await;
    let mut keys = gw.keys();
    keys.insert(hub_key.bound()).unwrap();
    let bodies = sub.bodies(&keys);
    drop(daemon);
    unsafe { libc::kill(hub.id().unwrap() as i32, libc::SIGTERM) };
    let _ = hub.wait().await;
    drain.await.unwrap();

    let got = images.values().next().unwrap();
    assert_eq!(got.len(), image.len());
    assert_eq!(spokegate::media::parts::sha256_hex(got), spokegate::media::parts::sha256_hex(&image));
    // De-duplicated on seq, every part the subscriber saw was sent under one seq only: the
    // restarted gateway sent the queued parts again, it did not cut the image again.
    let mut seq_of_part: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for b in media_bodies(&bodies) {
        seq_of_part.entry(b.media.as_ref().unwrap().part).or_default().insert(b.seq);
    }
    assert!(seq_of_part.len() > m / 2, "the subscriber saw the transfer ({} parts)", seq_of_part.len());
    let twice: Vec<_> = seq_of_part.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(twice.is_empty(), "parts under two seqs: {twice:?}");
}

/// A camera that is not there: the operator's capture fails with `camera-failed`, as a reply and
/// as a signed event, and the device says what to check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_from_a_missing_camera_fails_with_a_clear_reply_and_event() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let config = scope_config(&gw, broker.port, "camera = { path = \"/dev/v4l/by-id/usb-not-plugged-in\" }", "", "");
    let mut sub = Subscriber::connect(broker.port, "missing-camera").await;
    let gateway = RunningGateway::start(&config, gw.key());
    sub.until("the camera reported missing", |seen| {
        seen.iter()
            .any(|(t, p)| t.ends_with("/dev/scope/state") && String::from_utf8_lossy(p).contains("check the cable"))
    })
    .await;
    let args = spokegate::command::Args::from([("dev".to_string(), serde_json::json!("scope"))]);
    let mut states = Vec::new();
    let last = spokegate::command::socket::request(gw.path(), "capture", args, |r| states.push(r.state)).await.unwrap();
    assert_eq!(last.state, spokegate::model::ReplyState::Failed);
    assert_eq!(last.code, "camera-failed");
    assert!(last.text.contains("usb-not-plugged-in"), "{}", last.text);
    let keys = gw.keys();
    sub.until_signed("the camera-failed event", &keys, |b| event_codes(b).iter().any(|(c, _)| c == "camera-failed"))
        .await;
    gateway.stop().await;
}
