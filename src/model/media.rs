//! An image (or other file) sent in independently signed parts (`media` body).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `media` key of a body: one part of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// The same for every part of one file.
    pub id: String,
    pub mime: String,
    /// The whole file's size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, lower-case hex.
    pub sha256: String,
    /// This part's number, from 1.
    pub part: u32,
    pub parts: u32,
    #[serde(with = "super::bytes_or_base64")]
    pub data: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<BTreeMap<String, serde_json::Value>>,
}
