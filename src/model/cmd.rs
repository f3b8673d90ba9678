//! Bodies a hub signs with its own key (v1.1): a command to a gateway, and the acknowledgement of
//! what the hub has durably stored.

use super::BodyKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A hub's command (`{root}/cmd/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmdBody {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: BodyKind,
    /// The addressee.
    pub site: String,
    pub gw: String,
    /// The hub's id; must be the id the signing key is bound to.
    pub hub: String,
    /// Unique per hub: `[A-Za-z0-9._:-]{1,64}` (it names the reply topic).
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub args: BTreeMap<String, serde_json::Value>,
    /// Issued at and expires at, µs since the epoch: the gateway executes only when
    /// `iat - 5 min <= now <= exp`.
    pub iat: i64,
    pub exp: i64,
}

impl CmdBody {
    /// A command to gateway (`site`, `gw`); `hub` is filled in when it is signed.
    pub fn new(
        site: &str,
        gw: &str,
        id: &str,
        name: &str,
        args: BTreeMap<String, serde_json::Value>,
        iat: i64,
        exp: i64,
    ) -> Self {
        Self {
            v: super::BODY_VERSION,
            kind: BodyKind::Cmd,
            site: site.into(),
            gw: gw.into(),
            hub: String::new(),
            id: id.into(),
            name: name.into(),
            args,
            iat,
            exp,
        }
    }
}

/// `ack`: every `seq` in `ranges` (inclusive pairs) is durably stored by hub `hub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckBody {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: BodyKind,
    pub site: String,
    pub gw: String,
    pub hub: String,
    pub ranges: Vec<[u64; 2]>,
    pub t: i64,
}

impl AckBody {
    /// The ranges as inclusive pairs, first <= last (a reversed pair is read as written backwards).
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|[a, b]| ((*a).min(*b), (*a).max(*b)))
    }
}

/// Inclusive ranges covering `seqs` (sorted or not, repeats allowed), fewest ranges.
///
/// ```
/// assert_eq!(spokegate::model::ranges_of(&[5, 1, 2, 3, 9, 10]), vec![[1, 3], [5, 5], [9, 10]]);
/// ```
pub fn ranges_of(seqs: &[u64]) -> Vec<[u64; 2]> {
    let mut s = seqs.to_vec();
    s.sort_unstable();
    s.dedup();
    let mut out: Vec<[u64; 2]> = Vec::new();
    for v in s {
        match out.last_mut() {
            Some(r) if r[1].checked_add(1) == Some(v) => r[1] = v,
            _ => out.push([v, v]),
        }
    }
    out
}
