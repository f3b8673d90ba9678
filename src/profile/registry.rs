//! Where profiles come from: the ones shipped in `device-profiles/` (built into the binary, so a
//! packaged daemon needs no data files) and the operator's own `profiles_dir`, which may add
//! profiles or replace a shipped one of the same id.

use super::{compile, load_file, Profile};
use crate::diagnostic::{Diagnostic, Diagnostics};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The shipped profiles: (file name, text). One place lists them all.
pub const BUILTIN: &[(&str, &str)] = &[
    ("hl7-pcd01.toml", include_str!("../../device-profiles/hl7-pcd01.toml")),
    ("onetouch-ultra2.toml", include_str!("../../device-profiles/onetouch-ultra2.toml")),
    ("vitals-kv.toml", include_str!("../../device-profiles/vitals-kv.toml")),
    ("openbci-cyton.toml", include_str!("../../device-profiles/openbci-cyton.toml")),
    ("ecg-text-single.toml", include_str!("../../device-profiles/ecg-text-single.toml")),
    ("ecg-12lead-text.toml", include_str!("../../device-profiles/ecg-12lead-text.toml")),
    ("pcm-stethoscope.toml", include_str!("../../device-profiles/pcm-stethoscope.toml")),
    ("ble-glucose.toml", include_str!("../../device-profiles/ble-glucose.toml")),
    ("ble-heart-rate.toml", include_str!("../../device-profiles/ble-heart-rate.toml")),
    ("ble-blood-pressure.toml", include_str!("../../device-profiles/ble-blood-pressure.toml")),
    ("ble-thermometer.toml", include_str!("../../device-profiles/ble-thermometer.toml")),
    ("ble-pulse-oximeter.toml", include_str!("../../device-profiles/ble-pulse-oximeter.toml")),
    ("polar-h10-ecg.toml", include_str!("../../device-profiles/polar-h10-ecg.toml")),
    ("astm-glucometer.toml", include_str!("../../device-profiles/astm-glucometer.toml")),
    ("astm-analyser.toml", include_str!("../../device-profiles/astm-analyser.toml")),
    ("usb-microscope.toml", include_str!("../../device-profiles/usb-microscope.toml")),
];

/// Profiles by id.
#[derive(Debug, Clone, Default)]
pub struct ProfileRegistry {
    profiles: BTreeMap<String, Arc<Profile>>,
}

impl ProfileRegistry {
    /// The shipped profiles only.
    pub fn builtin() -> Result<Self, Diagnostics> {
        let mut reg = Self::default();
        let mut problems = Diagnostics::default();
        for (name, text) in BUILTIN {
            match compile(&PathBuf::from(format!("builtin:device-profiles/{name}")), text) {
                Ok(p) => {
                    reg.profiles.insert(p.id.clone(), Arc::new(p));
                }
                Err(d) => problems.0.extend(d.0),
            }
        }
        problems.into_result(reg)
    }

    /// The shipped profiles plus every `*.toml` in `dir`; a profile in `dir` replaces a shipped one
    /// with the same id. Two files in `dir` with the same id are an error.
    pub fn with_dir(dir: Option<&Path>) -> Result<Self, Diagnostics> {
        let mut reg = Self::builtin()?;
        let Some(dir) = dir else { return Ok(reg) };
        let mut problems = Diagnostics::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                return Err(Diagnostics(vec![Diagnostic::whole_file(
                    dir,
                    "profiles_dir",
                    format!("cannot read the profiles directory: {e}"),
                )]))
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in paths {
            match load_file(&path) {
                Ok(p) => {
                    if let Some(first) = seen.insert(p.id.clone(), path.clone()) {
                        problems.0.push(Diagnostic {
                            file: path.clone(),
                            line: 1,
                            column: 1,
                            item: "id".into(),
                            message: format!("profile id `{}` is also defined in {}", p.id, first.display()),
                        });
                    }
                    if reg.profiles.contains_key(&p.id) {
                        tracing::info!(profile = %p.id, file = %path.display(), "operator profile replaces the shipped one");
                    }
                    reg.profiles.insert(p.id.clone(), Arc::new(p));
                }
                Err(d) => problems.0.extend(d.0),
            }
        }
        problems.into_result(reg)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Profile>> {
        self.profiles.get(id).cloned()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// A profile by id, or by path when `name` names a file.
    pub fn resolve(&self, name: &str) -> Result<Arc<Profile>, Diagnostics> {
        let path = Path::new(name);
        if name.ends_with(".toml") || path.is_file() {
            return load_file(path).map(Arc::new);
        }
        self.get(name).ok_or_else(|| {
            Diagnostics(vec![Diagnostic {
                file: PathBuf::from(name),
                line: 1,
                column: 1,
                item: "profile".into(),
                message: format!("no profile `{name}` (known: {})", self.ids().collect::<Vec<_>>().join(", ")),
            }])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_compiles() {
        let reg = ProfileRegistry::builtin().unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(reg.ids().count(), BUILTIN.len());
        for id in ["hl7-pcd01", "onetouch-ultra2", "vitals-kv"] {
            assert!(reg.get(id).is_some(), "{id}");
        }
    }
}
