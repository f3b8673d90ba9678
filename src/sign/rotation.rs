//! Signing-key rotation. `spokegate key rotate` moves the current key aside as retired (its kid in
//! the file name: `gateway.key.retired-<kid>`, still 0600), makes a new key in its place and notes
//! until when the retired key still counts: messages it signed may still be queued or in flight
//! (the grace period). The daemon lists the current kid and those still in their grace in its
//! status (`kids`), and a hub keeps both JWKs, bound to the same gateway, until then.

use super::{KeyError, SigningKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The list of retired keys, beside the key file.
const LIST: &str = "retired-keys.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// The retired key's kid (hex).
    pub kid: String,
    /// Until when it counts, microseconds since the epoch.
    pub until: i64,
}

fn list_path(key_file: &Path) -> PathBuf {
    key_file.with_file_name(LIST)
}

/// The retired keys noted beside `key_file` (none when there is no list, or it is unreadable).
pub fn retired(key_file: &Path) -> Vec<Retired> {
    std::fs::read(list_path(key_file)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// The kids still in their grace at `now` (microseconds).
pub fn retiring_kids(key_file: &Path, now: i64) -> Vec<String> {
    retired(key_file).into_iter().filter(|r| r.until > now).map(|r| r.kid).collect()
}

/// Retires the key in `key_file` until `until` (microseconds) and makes a new one in its place.
/// Returns (the new key, the retired key).
pub fn rotate(key_file: &Path, until: i64) -> Result<(SigningKey, SigningKey), KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    let old = SigningKey::load(key_file)?;
    let kid = old.public().kid_hex();
    let name = key_file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "gateway.key".into());
    let retired_path = key_file.with_file_name(format!("{name}.retired-{kid}"));
    std::fs::rename(key_file, &retired_path).map_err(io(key_file))?;
    let new = match SigningKey::generate(key_file) {
        Ok(k) => k,
        Err(e) => {
            // Put the old key back: the gateway keeps a key whatever happens.
            let _ = std::fs::rename(&retired_path, key_file);
            return Err(e);
        }
    };
    let mut list = retired(key_file);
    list.retain(|r| r.kid != kid);
    list.push(Retired { kid, until });
    let tmp = list_path(key_file).with_extension("json.new");
    let text = serde_json::to_vec_pretty(&list).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, list_path(key_file)).map_err(io(&list_path(key_file)))?;
    Ok((new, old))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_rotation_keeps_the_old_key_aside_and_lists_it_until_its_grace_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.key");
        let first = SigningKey::generate(&path).unwrap();
        let (new, old) = rotate(&path, 1_000).unwrap();
        assert_eq!(old.public().kid_hex(), first.public().kid_hex());
        assert_ne!(new.public().kid_hex(), old.public().kid_hex());
        assert_eq!(SigningKey::load(&path).unwrap().public().kid_hex(), new.public().kid_hex());
        let kept = dir.path().join(format!("gateway.key.retired-{}", old.public().kid_hex()));
        assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(SigningKey::load(&kept).unwrap().public().kid_hex(), old.public().kid_hex());
        assert_eq!(retiring_kids(&path, 999), vec![old.public().kid_hex()]);
        assert_eq!(retiring_kids(&path, 1_000), Vec::<String>::new(), "past its grace");
    }
}
