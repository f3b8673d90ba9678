//! `spokegate camera list|snap`: cameras checked in the field, without a broker or a daemon.

use crate::exit;
use crate::profile::{DecoderSpec, ImageSpec};
use crate::transport::camera;
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum CameraCommand {
    /// List the V4L2 cameras of this machine with their formats and resolutions.
    List,
    /// Take one still and write it to FILE (as the camera gave it: metadata is not removed).
    Snap {
        /// A camera device of the configuration, a camera path (/dev/v4l/by-id/...), or sim:blood-smear.
        dev: String,
        file: PathBuf,
        #[arg(long, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

pub async fn run(command: CameraCommand) -> i32 {
    match command {
        CameraCommand::List => list(),
        CameraCommand::Snap { dev, file, config } => snap(&dev, &file, &config).await,
    }
}

fn list() -> i32 {
    let cameras = match camera::list() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("spokegate: cannot list cameras: {e}");
            return exit::OSERR;
        }
    };
    if cameras.is_empty() {
        println!("no cameras");
        return exit::OK;
    }
    for c in cameras {
        println!("{}  {} ({})", c.path.display(), c.card, c.driver);
        for (format, sizes) in c.formats {
            let sizes: Vec<String> = sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect();
            println!("    {format}: {}", sizes.join(" "));
        }
    }
    exit::OK
}

/// The camera path and still settings for DEV.
fn resolve(dev: &str, config: &Path) -> Result<(PathBuf, ImageSpec), i32> {
    if dev.starts_with('/') || dev.starts_with("sim:") {
        return Ok((PathBuf::from(dev), ImageSpec::default()));
    }
    let c = super::load_config(config)?;
    let Some(d) = c.devices.iter().find(|d| d.id == dev) else {
        eprintln!("spokegate: no device `{dev}` in {}", config.display());
        return Err(exit::USAGE);
    };
    match (&d.transport, &d.profile.decoder) {
        (crate::config::DeviceTransport::Camera { path }, DecoderSpec::Image(spec)) => Ok((path.clone(), spec.clone())),
        _ => {
            eprintln!("spokegate: device `{dev}` is not a camera");
            Err(exit::USAGE)
        }
    }
}

async fn snap(dev: &str, file: &Path, config: &Path) -> i32 {
    let (path, spec) = match resolve(dev, config) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let shot = match camera::still_with_timeout(&path, &spec).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("spokegate: no still from {}: {e}", path.display());
            return exit::UNAVAILABLE;
        }
    };
    if let Err(e) = std::fs::write(file, &shot.bytes) {
        eprintln!("spokegate: cannot write {}: {e}", file.display());
        return exit::CANTCREAT;
    }
    println!(
        "{}: {} bytes {}",
        file.display(),
        shot.bytes.len(),
        serde_json::to_string(&shot.settings).unwrap_or_default()
    );
    exit::OK
}
