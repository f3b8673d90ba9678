//! Stills (microscope and examination cameras, vendor software's folders) as the contract's
//! `media` body: a checked image ([`Still`]), stripped of what identifies people or places
//! ([`scrub`]), cut into independently signed parts ([`parts`]).
//!
//! Cameras and folders are transports (bytes in); this module is the "decoder" that turns one
//! image's bytes into `media` parts. It does no IO.

pub mod parts;
pub mod scrub;
mod still;

pub use parts::{media_id, sha256_hex, split, PartPlan};
pub use still::{ImageFormat, Still, StillError};
