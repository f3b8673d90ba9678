//! A microscope still of the size a camera's full resolution gives, made from the real blood
//! smear (shared with `benches/media.rs`, which includes this file).

use spokegate::sim::recordings::BLOOD_SMEAR_JPEG;

/// The blood smear scaled up and encoded at high quality until the JPEG is at least `min` bytes.
pub fn blood_smear_of_at_least(min: usize) -> Vec<u8> {
    let smear = image::load_from_memory(BLOOD_SMEAR_JPEG).unwrap();
    let mut scale = 2;
    loop {
        let img = smear.resize_exact(640 * scale, 480 * scale, image::imageops::FilterType::Triangle);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 100).encode_image(&img).unwrap();
        if out.len() >= min {
            return out;
        }
        scale += 1;
    }
}
