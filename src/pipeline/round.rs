//! One sign-and-commit round: a batch the sealer gathered is numbered, stamped with the consult
//! (a change in the batch applies to what follows it), signed (on several cores when it is
//! large), and committed to the durable queue in one transaction, synced when someone waits to
//! hear it is stored. The sealer decides when a round runs and on which thread.

use super::signer::{SealError, Signer};
use super::{ConsultNow, Payload, ToSign};
use crate::mqtt::{topics, Publication};
use crate::queue::{lock, Queue, QueueError, Record, StoredConsult};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// What signing and committing cost, summed (for the metrics: sum / count is the mean).
#[derive(Debug, Default)]
pub struct PipelineTimes {
    pub signed: std::sync::atomic::AtomicU64,
    pub sign_micros: std::sync::atomic::AtomicU64,
    pub commits: std::sync::atomic::AtomicU64,
    pub commit_micros: std::sync::atomic::AtomicU64,
}

impl PipelineTimes {
    pub(super) fn add(&self, signed: usize, sign: std::time::Duration, commit: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.signed.fetch_add(signed as u64, Relaxed);
        self.sign_micros.fetch_add(sign.as_micros() as u64, Relaxed);
        self.commits.fetch_add(1, Relaxed);
        self.commit_micros.fetch_add(commit.as_micros() as u64, Relaxed);
    }
}

/// What one sign-and-commit round did.
pub(super) struct Round {
    pub committed: Result<(), QueueError>,
    pub records: Vec<Record>,
    pub accepted: Vec<oneshot::Sender<()>>,
    /// The consult binding's new signed body, to be re-published (retained) by the uplink.
    pub consult: Option<Publication>,
}

/// Batches at least this long are signed on several cores.
const PARALLEL_SIGNING: usize = 64;

/// Signs `jobs` numbered from `first`, each stamped with `consults[stamp[i]]`; on several cores
/// for a large batch (Ed25519 signing is most of the work at high rates).
fn sign_all(
    signer: &Signer,
    jobs: &mut [ToSign],
    first: u64,
    consults: &[Option<String>],
    stamp: &[usize],
) -> Vec<Result<Record, SealError>> {
    crate::parallel::map_in_order(jobs, PARALLEL_SIGNING, |i, job| {
        signer.sign(first + i as u64, job, consults[stamp[i]].as_deref())
    })
}

/// Numbers, stamps, signs and commits jobs. A consult change in the batch applies to the jobs
/// after it, and is committed with them. With `sync`, the commit is on disk before this returns
/// (someone waits to hear it is stored); otherwise the periodic sync covers it.
pub(super) fn sign_and_commit(
    signer: &Signer,
    queue: &Mutex<Queue>,
    mut jobs: Vec<ToSign>,
    sync: bool,
    times: &PipelineTimes,
) -> Round {
    let first = match lock(queue).reserve_seqs(jobs.len() as u64) {
        Ok(first) => first,
        Err(e) => {
            tracing::error!(error = %e, "cannot number readings; not acknowledged");
            return Round { committed: Err(e), records: Vec::new(), accepted: Vec::new(), consult: None };
        }
    };
    // Which consult each job is signed with (a change applies to the jobs after it).
    let mut now = signer.consult();
    let mut consults = vec![now.consult.clone()];
    let mut stamp = Vec::with_capacity(jobs.len());
    let mut change_at = None;
    for (i, job) in jobs.iter().enumerate() {
        stamp.push(consults.len() - 1);
        if let Payload::Consult(c) = &job.payload {
            now = ConsultNow { consult: c.consult.clone(), since: job.t, by: Some(c.by), cmd: c.cmd.clone() };
            consults.push(now.consult.clone());
            change_at = Some(i);
        }
    }
    let started = std::time::Instant::now();
    let signed = sign_all(signer, &mut jobs, first, &consults, &stamp);
    let sign_time = started.elapsed();
    let mut changed: Option<StoredConsult> = None;
    let mut records = Vec::with_capacity(jobs.len());
    let mut accepted = Vec::new();
    let mut memories = Vec::new();
    // What was signed, with its gateway time, for the look at the clock after the commit.
    let mut signed_at = Vec::with_capacity(jobs.len());
    for (i, (job, result)) in jobs.into_iter().zip(signed).enumerate() {
        match result {
            Ok(r) => {
                signed_at.push((r.seq, job.t));
                if change_at == Some(i) {
                    changed = Some(StoredConsult {
                        consult: now.consult.clone(),
                        since: now.since,
                        by: now.by.map(|b| b.as_str()).unwrap_or("operator").into(),
                        cmd: now.cmd.clone(),
                        envelope: r.payload.clone(),
                    });
                }
                records.push(r);
                accepted.extend(job.accepted);
                if let (Some(m), Some(from)) = (job.remember, &job.from) {
                    memories.push((from.dev.to_string(), m));
                }
            }
            // Dropping `accepted` tells the device task the reading was not taken.
            Err(e) => tracing::error!(error = %e, "cannot sign a message; not acknowledged"),
        }
    }
    let committing = std::time::Instant::now();
    let committed = {
        let mut q = lock(queue);
        let c = q.commit_unsynced(&records, &memories, changed.as_ref());
        let c = if sync { c.and_then(|()| q.sync()) } else { c };
        // A step of the wall clock is seen at the first commit after it, so its range of
        // messages signed on the old clock is exact (the eviction round reports it).
        if let Err(e) = q.follow_clock(crate::clock::Now::read(), &signed_at) {
            tracing::error!(error = %e, "cannot follow the wall clock in the queue");
        }
        c
    };
    times.add(records.len(), sign_time, committing.elapsed());
    let retained = changed.map(|c| Publication {
        topic: topics::consult(&signer.site, &signer.gw),
        payload: c.envelope,
        retain: true,
    });
    if retained.is_some() {
        // The binding applies to what is signed from now on, committed or streamed live.
        *signer.consult.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }
    Round { committed, records, accepted, consult: retained }
}

/// A batch this small that nobody waits on is signed and committed on the runtime thread (no
/// hand-over to a blocking thread and back).
pub(super) const INLINE_BATCH: usize = 16;
