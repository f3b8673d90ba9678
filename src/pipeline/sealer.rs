//! The sealer: one task takes what devices hand over, lets what arrives within `group_ms` join a
//! commit, signs the batch (on several cores when it is large), commits it to the durable queue
//! and only then tells the devices, and hands the records to the uplink.

use super::pace::ArrivalPace;
use super::round::{sign_and_commit, PipelineTimes, Round, INLINE_BATCH};
use super::signer::Signer;
use super::{Outgoing, Payload, Source, ToSign};
use crate::clock::now_rfc3339;
use crate::model::{Event, Severity};
use crate::mqtt::status::{DeviceState, LinkState};
use crate::mqtt::{topics, Publication, QueueHealth};
use crate::queue::{lock, ClockStep, Queue, Record};
use crate::snapshot::SnapshotTx;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

/// Turns accepted readings into signed, committed queue records.
pub struct Sealer {
    pub signer: Arc<Signer>,
    pub queue: Arc<Mutex<Queue>>,
    /// Told when committed records could not be handed over in memory (the link reads the queue).
    pub committed: Arc<Notify>,
    pub health: Arc<QueueHealth>,
    pub snapshot: SnapshotTx,
    /// Commits nobody waits for are synced within this (zero: every commit at once).
    pub sync_within: std::time::Duration,
    /// A commit waits at most this long after its first message for more to join it.
    pub group_within: std::time::Duration,
    /// Beats on every turn of the loop (the watchdog's sign of life).
    pub heartbeat: Arc<crate::systemd::Heartbeat>,
    /// Signing and commit times.
    pub times: Arc<PipelineTimes>,
    /// Waveform chunks for the operator's page, while it listens.
    pub waves: crate::snapshot::WaveTap,
}

/// tokio's timers fire on millisecond ticks: a shorter wait still costs a wake-up.
const TIMER_RESOLUTION: std::time::Duration = std::time::Duration::from_millis(1);

/// How many waiting messages one commit takes at most.
const COMMIT_BATCH: usize = 512;
/// How often eviction (waveform and media caps and TTLs) runs.
const ENFORCE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Sealer {
    fn state(&self, from: &Source, state: LinkState, detail: Option<String>, streaming: Option<bool>) -> Publication {
        let (site, gw) = (&self.signer.site, &self.signer.gw);
        let s = DeviceState { state, profile: from.profile.to_string(), since: now_rfc3339(), detail, streaming };
        self.snapshot.send_modify(|snap| snap.device_state(&from.dev, &s));
        Publication { topic: topics::device_state(site, gw, &from.dev), payload: s.to_json(), retain: true }
    }

    /// Runs until every device task is gone: takes what is waiting, signs it, commits it in one
    /// transaction, and only then tells the devices their readings are accepted.
    pub async fn run(
        self,
        mut input: mpsc::Receiver<Outgoing>,
        fresh: mpsc::Sender<Vec<Record>>,
        states: mpsc::Sender<Publication>,
        live: mpsc::Sender<Publication>,
    ) {
        let mut batch = Vec::with_capacity(COMMIT_BATCH);
        // Caps and TTLs are enforced on a clock, not only while readings arrive: a queue that
        // stopped growing while the uplink is down must still come back under its caps.
        let mut enforce = tokio::time::interval(ENFORCE_EVERY);
        enforce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sync_within = self.sync_within;
        // The first periodic sync is one period after the start (an interval's first tick is
        // immediate, and would sync a commit made before it ran).
        let period = sync_within.max(std::time::Duration::from_millis(1));
        let mut sync = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut pace = ArrivalPace::default();
        loop {
            self.heartbeat.beat();
            let received = tokio::select! {
                n = input.recv_many(&mut batch, COMMIT_BATCH) => n,
                _ = beat.tick() => continue,
                _ = enforce.tick() => {
                    self.enforce();
                    continue;
                }
                _ = sync.tick(), if !sync_within.is_zero() => {
                    self.sync().await;
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            pace.arrived(tokio::time::Instant::now(), received);
            self.gather(&mut input, &mut batch, &mut pace).await;
            let mut jobs = Vec::with_capacity(batch.len());
            let mut state_updates = Vec::new();
            for msg in batch.drain(..) {
                match msg {
                    Outgoing::State { from, state, detail, streaming } => {
                        state_updates.push(self.state(&from, state, detail, streaming))
                    }
                    Outgoing::Signed(job) => jobs.push(job),
                }
            }
            // A device's state goes out before what it signed in the same commit (a device that
            // connects and sends at once is shown connected first).
            for s in state_updates {
                if states.send(s).await.is_err() {
                    return;
                }
            }
            if !jobs.is_empty() {
                self.note_last(&jobs);
                // Synced now when someone is told it is stored; else by the periodic sync.
                let wait = sync_within.is_zero() || jobs.iter().any(|j| j.accepted.is_some() || j.remember.is_some());
                let round = if jobs.len() <= INLINE_BATCH && !wait {
                    Some(sign_and_commit(&self.signer, &self.queue, jobs, false, &self.times))
                } else {
                    let (signer, queue, times) = (self.signer.clone(), self.queue.clone(), self.times.clone());
                    match tokio::task::spawn_blocking(move || sign_and_commit(&signer, &queue, jobs, wait, &times))
                        .await
                    {
                        Ok(round) => Some(round),
                        Err(e) => {
                            tracing::error!(error = %e, "signing task failed; readings not acknowledged");
                            None
                        }
                    }
                };
                if let Some(mut round) = round {
                    // The consult binding's new signed body, re-published (retained) once committed.
                    let binding = round.consult.take();
                    if binding.is_some() {
                        let now = self.signer.consult();
                        self.snapshot.send_modify(|snap| snap.consult = now.consult.clone());
                    }
                    self.after_commit(round, &fresh, &live);
                    if let Some(c) = binding {
                        if states.send(c).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        self.sync().await;
    }

    /// Lets what arrives within `group_within` of a commit's first message join it (a commit
    /// already full, or a closed input, does not wait). One transaction and one hand-over for
    /// them all: at low rates that, not the signature, is most of a reading's cost. The commit
    /// goes at once, rather than after a wake-up, when the next message is not expected before
    /// the window closes (from the pace of arrivals) or less than the timer's resolution is left.
    async fn gather(&self, input: &mut mpsc::Receiver<Outgoing>, batch: &mut Vec<Outgoing>, pace: &mut ArrivalPace) {
        if self.group_within.is_zero() {
            return;
        }
        let until = tokio::time::Instant::now() + self.group_within;
        while batch.len() < COMMIT_BATCH {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left < TIMER_RESOLUTION || pace.expected_gap().is_some_and(|gap| gap > left) {
                return;
            }
            match tokio::time::timeout_at(until, input.recv_many(batch, COMMIT_BATCH - batch.len())).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pace.arrived(tokio::time::Instant::now(), n),
            }
        }
    }

    /// Notes each device's last reading and event for the operator's page: the batch is read from
    /// its end, so only the last of each is copied, and the picture changes once per batch. Its
    /// waveform chunks go to the page's live trace while one listens.
    fn note_last(&self, jobs: &[ToSign]) {
        use crate::snapshot::{LastEvent, LastReading};
        if self.waves.receiver_count() > 0 {
            for job in jobs {
                if let (Some(from), Payload::Wave(w)) = (&job.from, &job.payload) {
                    let json = crate::consult_view::item::wave_json(&from.dev, w).to_string();
                    let _ = self.waves.send(json.into());
                }
            }
        }
        let mut last: Vec<(&str, Option<LastReading>, Option<LastEvent>)> = Vec::new();
        for job in jobs.iter().rev() {
            let Some(from) = &job.from else { continue };
            let i = match last.iter().position(|(d, _, _)| *d == &*from.dev) {
                Some(i) => i,
                None => {
                    last.push((&from.dev, None, None));
                    last.len() - 1
                }
            };
            let entry = &mut last[i];
            match &job.payload {
                Payload::Obs(obs) if entry.1.is_none() => {
                    entry.1 = obs.first().map(|o| LastReading {
                        name: o.code.name.clone().unwrap_or_else(|| format!("MDC {}", o.code.mdc)),
                        mdc: o.code.mdc,
                        value: o.val,
                        unit: o.unit.ucum.clone(),
                        t: job.t,
                    });
                }
                Payload::Event(e) if entry.2.is_none() => {
                    entry.2 = Some(LastEvent {
                        code: e.code.clone(),
                        sev: e.sev.as_str().into(),
                        text: e.text.clone(),
                        t: job.t,
                    })
                }
                _ => {}
            }
        }
        if last.iter().all(|(_, r, e)| r.is_none() && e.is_none()) {
            return;
        }
        self.snapshot.send_modify(|snap| {
            for (dev, r, e) in last {
                snap.signed(dev, r, e);
            }
        });
    }

    /// Syncs what was committed without a sync (on a blocking thread: it waits for the disk).
    async fn sync(&self) {
        if !lock(&self.queue).unsynced() {
            return;
        }
        let queue = self.queue.clone();
        match tokio::task::spawn_blocking(move || lock(&queue).sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot sync the queue to disk"),
            Err(e) => tracing::error!(error = %e, "queue sync task failed"),
        }
    }

    fn after_commit(&self, round: Round, fresh: &mpsc::Sender<Vec<Record>>, live: &mpsc::Sender<Publication>) {
        match round.committed {
            Ok(()) => {
                if self.health.get().is_some() {
                    tracing::info!("queue commits again");
                    self.health.set(None);
                }
                for a in round.accepted {
                    let _ = a.send(());
                }
                // Hand the committed records to the uplink in memory; if it is behind, it reads
                // them from the queue instead.
                if !round.records.is_empty() && fresh.try_send(round.records).is_err() {
                    self.committed.notify_one();
                }
            }
            Err(e) => {
                // No commit, no acknowledgement: devices that retransmit will. Stream live meanwhile.
                if self.health.get().is_none() {
                    tracing::error!(error = %e, "queue cannot commit; streaming live without durability");
                }
                self.health.set(Some(e.to_string()));
                for r in round.records {
                    let _ = live.try_send(Publication { topic: r.topic, payload: r.payload, retain: false });
                }
            }
        }
    }

    /// Follows the wall clock, evicts what the queue policy says must go, and tells the hub what
    /// was dropped and when the clock was stepped.
    fn enforce(&self) {
        let now = crate::clock::Now::read();
        let (dropped, steps) = {
            let mut q = lock(&self.queue);
            if let Err(e) = q.follow_clock(now, &[]) {
                // No eviction by a clock the queue could not follow: the next round tries again.
                tracing::error!(error = %e, "cannot follow the wall clock in the queue; nothing evicted");
                return;
            }
            let steps = q.take_clock_steps();
            match q.enforce(now.wall) {
                Ok(d) => (d, steps),
                Err(e) => {
                    tracing::error!(error = %e, "queue eviction failed");
                    (Vec::new(), steps)
                }
            }
        };
        let stepped = steps.iter().map(|s| ToSign::gateway(Payload::Event(clock_stepped(s))));
        let jobs: Vec<ToSign> = dropped
            .into_iter()
            .map(|d| {
                tracing::error!(dev = %d.dev, class = d.class.as_str(), reason = d.reason, count = d.count, "queued messages evicted");
                let text = format!("{} undelivered {} messages dropped ({})", d.count, d.class.as_str(), d.reason);
                let event = Event::new("queue-evicted", Severity::Warn, text)
                    .with("class", d.class.as_str())
                    .with("reason", d.reason)
                    .with("count", d.count)
                    .with("bytes", d.bytes);
                let from = Source { dev: d.dev.as_str().into(), profile: "spokegate".into() };
                ToSign::new(from, Payload::Event(event), now.wall, None)
            })
            .chain(stepped)
            .collect();
        if !jobs.is_empty() && sign_and_commit(&self.signer, &self.queue, jobs, false, &self.times).committed.is_ok() {
            self.committed.notify_one();
        }
    }
}

/// The signed report of a step of the gateway's wall clock: the messages it signed this boot
/// before the step carry gateway times off by the step (`t`; device times are the device's).
pub fn clock_stepped(s: &ClockStep) -> Event {
    let text = format!(
        "the gateway clock was stepped {} by {}: the gateway times (t) of seq {}..={} were on the old clock",
        if s.step_us >= 0 { "forward" } else { "back" },
        span_text(s.step_us.unsigned_abs()),
        s.seq_from,
        s.seq_to,
    );
    // An RTC's drift corrected at boot is seconds; a clock without one is off by hours or years.
    let sev = if s.step_us.unsigned_abs() < 60_000_000 { Severity::Info } else { Severity::Warn };
    Event::new(crate::hub::clock_steps::CODE, sev, text)
        .with("step_us", s.step_us)
        .with("seq_from", s.seq_from)
        .with("seq_to", s.seq_to)
        .with("queued", s.rows)
}

/// A span of µs as days, hours, minutes and seconds (`2d 3h 0m 5.25s`, `41.5s`).
fn span_text(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let frac = (micros % 1_000_000) as f64 / 1e6;
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, (secs % 60) as f64 + frac);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BodyFormat;
    use crate::model::{Event, Severity};
    use crate::pipeline::ConsultNow;
    use crate::queue::QueuePolicy;
    use crate::sign::SigningKey;
    use std::time::Duration;

    struct Bench {
        input: mpsc::Sender<Outgoing>,
        fresh: mpsc::Receiver<Vec<Record>>,
        queue: Arc<Mutex<Queue>>,
        run: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
        _states: mpsc::Receiver<Publication>,
        _live: mpsc::Receiver<Publication>,
    }

    /// A sealer on a real queue in a temporary folder, committing what is waiting at once.
    fn sealer(sync_within: Duration) -> Bench {
        grouping_sealer(sync_within, Duration::ZERO)
    }

    fn grouping_sealer(sync_within: Duration, group_within: Duration) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(&dir.path().join("gateway.key")).unwrap();
        let queue = Arc::new(Mutex::new(Queue::open(dir.path(), QueuePolicy::default()).unwrap()));
        let signer = Signer::new("site", "gw", Arc::new(key), BodyFormat::Cbor, ConsultNow::default());
        let (snapshot, _) = crate::snapshot::channel(Default::default());
        let sealer = Sealer {
            signer: Arc::new(signer),
            queue: queue.clone(),
            committed: Arc::default(),
            health: Arc::default(),
            snapshot,
            sync_within,
            group_within,
            heartbeat: Default::default(),
            times: Default::default(),
            waves: crate::snapshot::wave_tap(),
        };
        let (input, rx) = mpsc::channel(8);
        let (fresh_tx, fresh) = mpsc::channel(8);
        let (states_tx, _states) = mpsc::channel(8);
        let (live_tx, _live) = mpsc::channel(8);
        let run = tokio::spawn(sealer.run(rx, fresh_tx, states_tx, live_tx));
        Bench { input, fresh, queue, run, _dir: dir, _states, _live }
    }

    fn event() -> Payload {
        Payload::Event(Event::new("test", Severity::Info, "a message"))
    }

    #[tokio::test]
    async fn a_commit_is_synced_before_anyone_is_told_and_the_rest_by_the_end() {
        let mut b = sealer(Duration::from_secs(3600));
        // Someone waits (a device's acknowledgement): synced before the receipt.
        let (job, receipt) = ToSign::gateway_with_receipt(event());
        b.input.send(Outgoing::Signed(job)).await.unwrap();
        receipt.await.unwrap();
        assert!(!lock(&b.queue).unsynced(), "told before the commit reached the disk");
        b.fresh.recv().await.unwrap();
        // Nobody waits: committed (and handed on) without a sync of its own.
        b.input.send(Outgoing::Signed(ToSign::gateway(event()))).await.unwrap();
        let records = b.fresh.recv().await.unwrap();
        assert_eq!(records.len(), 1);
        assert!(lock(&b.queue).unsynced(), "a commit nobody waits for paid for a sync of its own");
        // The sealer's end syncs what is left.
        drop(b.input);
        b.run.await.unwrap();
        assert!(!lock(&b.queue).unsynced());
    }

    #[tokio::test]
    async fn the_clock_is_looked_at_after_every_commit() {
        // So a clock-stepped event's range ends at the last message signed on the old clock.
        let mut b = sealer(Duration::from_secs(3600));
        for _ in 0..3 {
            b.input.send(Outgoing::Signed(ToSign::gateway(event()))).await.unwrap();
            let last = b.fresh.recv().await.unwrap().last().unwrap().seq;
            assert_eq!(lock(&b.queue).clock_sure_to(), last + 1, "no look at the clock after the commit of seq {last}");
        }
    }

    /// Sends a message and waits until the sealer has taken it from its input.
    async fn hand_over(b: &Bench, job: ToSign) {
        b.input.send(Outgoing::Signed(job)).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while b.input.capacity() < b.input.max_capacity() {
            assert!(tokio::time::Instant::now() < deadline, "the sealer did not take the message");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn what_arrives_within_group_ms_joins_the_commit_and_is_told_after_it() {
        let group = Duration::from_millis(500);
        let mut b = grouping_sealer(Duration::from_secs(3600), group);
        let t0 = tokio::time::Instant::now();
        let (first, mut told_first) = ToSign::gateway_with_receipt(event());
        hand_over(&b, first).await;
        // Taken, and waiting for company: not committed yet.
        assert!(lock(&b.queue).after(0, 10).unwrap().is_empty(), "committed before its group time");
        hand_over(&b, ToSign::gateway(event())).await;
        let (third, told_third) = ToSign::gateway_with_receipt(event());
        hand_over(&b, third).await;
        assert!(told_first.try_recv().is_err(), "a device was told before its reading was committed");
        let records = b.fresh.recv().await.unwrap();
        assert!(t0.elapsed() >= group, "committed before its group time was up");
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3], "one commit for the three");
        told_first.await.unwrap();
        told_third.await.unwrap();
        assert!(!lock(&b.queue).unsynced(), "told before the commit reached the disk");
        // A message with nobody to join it is still committed, alone, once its group time is up.
        b.input.send(Outgoing::Signed(ToSign::gateway(event()))).await.unwrap();
        assert_eq!(b.fresh.recv().await.unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_does_not_wait_for_a_message_the_pace_does_not_expect_in_time() {
        let group = Duration::from_millis(500);
        let mut b = grouping_sealer(Duration::from_secs(3600), group);
        // The pace is not known yet: the first message waits out its group time.
        let t0 = tokio::time::Instant::now();
        b.input.send(Outgoing::Signed(ToSign::gateway(event()))).await.unwrap();
        b.fresh.recv().await.unwrap();
        assert!(t0.elapsed() >= group, "committed before its group time with no pace known");
        // Messages 800 ms apart: the next one is not expected within 500 ms, so none waits.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(800) - group).await;
            let sent = tokio::time::Instant::now();
            b.input.send(Outgoing::Signed(ToSign::gateway(event()))).await.unwrap();
            assert_eq!(b.fresh.recv().await.unwrap().len(), 1);
            assert!(sent.elapsed() < group, "waited {:?} for a message not expected in time", sent.elapsed());
        }
        // A burst brings the expected gap down again: what follows waits for company.
        for _ in 0..32 {
            hand_over(&b, ToSign::gateway(event())).await;
        }
        let sent = tokio::time::Instant::now();
        hand_over(&b, ToSign::gateway(event())).await;
        hand_over(&b, ToSign::gateway(event())).await;
        let mut seen = 0;
        while seen < 34 {
            seen += b.fresh.recv().await.unwrap().len();
        }
        assert!(sent.elapsed() >= group, "a fast pace no longer groups");
    }

    #[tokio::test]
    async fn commits_nobody_waits_for_are_synced_within_sync_ms() {
        let mut b = sealer(Duration::from_millis(50));
        b.input.send(Outgoing::Signed(ToSign::gateway(event()))).await.unwrap();
        b.fresh.recv().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while lock(&b.queue).unsynced() {
            assert!(tokio::time::Instant::now() < deadline, "not synced by the periodic sync");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn a_clock_step_is_reported_with_its_size_and_the_messages_on_the_old_clock() {
        let step = ClockStep {
            step_us: 2 * 86_400_000_000 + 3 * 3_600_000_000 + 5_250_000,
            seq_from: 7,
            seq_to: 40,
            rows: 12,
        };
        let e = clock_stepped(&step);
        assert_eq!((e.code.as_str(), e.sev), ("clock-stepped", Severity::Warn));
        assert!(e.text.contains("forward by 2d 3h 0m 5.25s") && e.text.contains("seq 7..=40"), "{}", e.text);
        let data = e.data.unwrap();
        assert_eq!(
            (data["step_us"].as_i64(), data["seq_from"].as_u64(), data["seq_to"].as_u64()),
            (Some(step.step_us), Some(7), Some(40))
        );
        assert_eq!(data["queued"].as_u64(), Some(12));
        let back = clock_stepped(&ClockStep { step_us: -41_500_000, ..step });
        assert!(back.text.contains("back by 41.5s"), "{}", back.text);
        assert_eq!(back.sev, Severity::Info, "a correction of seconds is news, not a warning");
    }

    #[tokio::test]
    async fn sync_ms_zero_syncs_every_commit() {
        let mut b = sealer(Duration::ZERO);
        b.input.send(Outgoing::Signed(ToSign::gateway(event()))).await.unwrap();
        b.fresh.recv().await.unwrap();
        assert!(!lock(&b.queue).unsynced());
    }
}
