//! A simulated LifeScan OneTouch Ultra 2 on a PTY that behaves as the real one does (the command
//! set public drivers document: glucometers-tech/glucometerutils `otultra2.py`): silent until
//! asked; every command comes after the DC1 CR wake-up and ends with CR; replies are lines ending
//! CR LF with the sum-16 checksum. `DM?` firmware, `DM@` serial number, `DMF` clock, `DMT` sets
//! the clock, `DMP` dumps the memory (a header counting the records, then the records, newest
//! first). It can garble chosen reply lines and pace its output as a 9600-baud line does.

use super::PtyPeer;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the meter holds.
#[derive(Debug, Clone)]
pub struct MeterState {
    pub serial: String,
    pub firmware: String,
    /// The meter's clock (its local time) and when it was read.
    pub clock: time::PrimitiveDateTime,
    pub clock_at: std::time::Instant,
    /// Dump record bodies (without their checksum), newest first.
    pub records: Vec<String>,
    /// Reply lines (counted from 0 over the meter's life) sent with a damaged byte.
    pub garble: Vec<usize>,
    /// Every command received, in order.
    pub commands: Vec<String>,
    /// Bits per second the replies are paced at (`None`: as fast as the PTY takes them).
    pub baud: Option<u32>,
    lines_sent: usize,
}

impl MeterState {
    /// A meter holding `records` (dump record bodies, newest first) whose clock reads `clock` now.
    pub fn new(records: Vec<String>, clock: time::PrimitiveDateTime) -> Self {
        Self {
            // The example serial number of the sourced dump header (tidepool-org/uploader).
            serial: "GMF600DCY".into(),
            firmware: "P02.00.00 30/08/06".into(),
            clock,
            clock_at: std::time::Instant::now(),
            records,
            garble: Vec::new(),
            commands: Vec::new(),
            baud: None,
            lines_sent: 0,
        }
    }

    /// The meter's clock now.
    pub fn now(&self) -> time::PrimitiveDateTime {
        self.clock + self.clock_at.elapsed()
    }

    /// The record bodies of a sourced dump (its lines without their checksums; the header is
    /// left out).
    pub fn records_of_dump(dump: &str) -> Vec<String> {
        dump.lines()
            .filter_map(|l| l.trim_end().rsplit_once(' ').map(|(body, _)| body.to_string()))
            .filter(|b| b.starts_with("P \""))
            .collect()
    }
}

/// A line as the meter sends it: body, space, sum-16 in hex, CR LF.
pub fn line(body: &str) -> String {
    format!("{body} {:04X}\r\n", crate::decode::text::sum16(body.as_bytes()))
}

/// A reading record body as the meter dumps it.
pub fn record(at: time::PrimitiveDateTime, mg_dl: u16) -> String {
    format!("P {},\"  {:03} \",\"N\",\"00\", 00", clock_text(at), mg_dl)
}

fn weekday(at: time::PrimitiveDateTime) -> String {
    at.weekday().to_string()[..3].to_ascii_uppercase()
}

fn clock_text(at: time::PrimitiveDateTime) -> String {
    format!(
        "\"{}\",\"{:02}/{:02}/{:02}\",\"{:02}:{:02}:{:02}   \"",
        weekday(at),
        at.month() as u8,
        at.day(),
        at.year() % 100,
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The reply lines (bodies) to one command.
fn answer(m: &mut MeterState, command: &str) -> Vec<String> {
    match command {
        "DM?" => vec![format!("?{}", m.firmware)],
        "DM@" => vec![format!("@ \"{}\"", m.serial)],
        "DMF" => vec![format!("F {}", clock_text(m.now()))],
        "DMP" => {
            let mut out = vec![format!("P {:03},\"{}\",\"MG/DL \"", m.records.len(), m.serial)];
            out.extend(m.records.iter().cloned());
            out
        }
        c if c.starts_with("DMT") => {
            let f = time::macros::format_description!("[month]/[day]/[year repr:last_two] [hour]:[minute]:[second]");
            let mut parsed = time::parsing::Parsed::new();
            let ok = parsed.parse_items(&c.as_bytes()[3..], f).is_ok_and(|rest| rest.is_empty());
            let at = ok.then(|| parsed.with_year(2000 + i32::from(parsed.year_last_two()?))).flatten().and_then(|p| {
                Some(time::PrimitiveDateTime::new(time::Date::try_from(p).ok()?, time::Time::try_from(p).ok()?))
            });
            match at {
                Some(at) => {
                    m.clock = at;
                    m.clock_at = std::time::Instant::now();
                    vec![format!("T {}", clock_text(at))]
                }
                None => Vec::new(),
            }
        }
        // A real meter ignores what it does not know.
        _ => Vec::new(),
    }
}

/// Serves the meter on the PTY until the line closes.
pub async fn serve(meter: Arc<Mutex<MeterState>>, mut peer: PtyPeer) {
    let mut buf = [0u8; 256];
    let mut pending = Vec::new();
    loop {
        let n = match peer.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(i) = pending.iter().position(|&b| b == b'\r') {
            let cmd: Vec<u8> = pending.drain(..=i).collect();
            let cmd = String::from_utf8_lossy(&cmd[..i]).trim_matches(|c| c == '\u{11}').trim().to_string();
            if cmd.is_empty() {
                continue;
            }
            let (lines, baud) = {
                let mut m = meter.lock().unwrap_or_else(|p| p.into_inner());
                m.commands.push(cmd.clone());
                let bodies = answer(&mut m, &cmd);
                let mut lines = Vec::new();
                for b in bodies {
                    let mut l = line(&b).into_bytes();
                    if m.garble.contains(&m.lines_sent) && l.len() > 4 {
                        l[2] ^= 0x01;
                    }
                    m.lines_sent += 1;
                    lines.push(l);
                }
                (lines, m.baud)
            };
            for l in lines {
                if let Some(baud) = baud {
                    // 10 bits per byte on an 8N1 line.
                    tokio::time::sleep(Duration::from_micros(l.len() as u64 * 10_000_000 / u64::from(baud))).await;
                }
                if peer.send(&l).await.is_err() {
                    return;
                }
            }
        }
    }
}
