//! What the consult view shows of one verified message: its body as the gateway signed it, with a
//! waveform's packed samples unpacked to the exact integers, an image part's bytes left out (the
//! image is fetched whole once complete), and the proof: whether the signature holds, its kid,
//! the gateway's seq (in the body) and when the hub stored it.

use crate::hub::unpack_channels;
use crate::model::{Body, Wave};

/// The proof the page shows beside an item.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The hub's id of the stored message (`/api/messages/{id}`).
    pub id: i64,
    pub kid: String,
    /// When the hub stored it, milliseconds since the Unix epoch.
    pub stored_ms: f64,
    /// The signature checked with the trusted key; the reason when it does not hold.
    pub verified: Result<(), String>,
    /// How far the gateway's clock was stepped after it signed this, µs (its `clock-stepped`
    /// event): the page shows the gateway time with this added, and says so.
    pub clock_fix_us: i64,
}

/// A completed image: what its thumbnail and provenance need.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageDone {
    pub url: String,
    pub sha256: String,
    pub meta: Option<serde_json::Value>,
}

/// (site, gw, media id).
pub type MediaKey = (String, String, String);

/// The media key of an image part.
pub fn media_key(b: &Body) -> Option<MediaKey> {
    b.media.as_ref().map(|m| (b.site.clone(), b.gw.clone(), m.id.clone()))
}

/// Where the page fetches a completed image.
pub fn image_url(k: &MediaKey) -> String {
    format!("/api/images/{}/{}/{}", k.0, k.1, k.2)
}

/// Replaces the packed bytes of `w`'s channels in `v` (its JSON) by the exact samples (`s`).
fn unpacked(v: &mut serde_json::Value, w: &Wave) {
    match unpack_channels(w) {
        Ok(channels) => {
            for (c, samples) in channels.into_iter().enumerate() {
                if let Some(ch) = v["ch"].get_mut(c).and_then(|c| c.as_object_mut()) {
                    ch.remove("data");
                    ch.insert("s".into(), samples.into());
                }
            }
        }
        Err(e) => v["wave_error"] = e.to_string().into(),
    }
}

/// A waveform chunk of device `dev` as the strips draw it (the operator's page's live trace).
pub fn wave_json(dev: &str, w: &Wave) -> serde_json::Value {
    let mut v = serde_json::to_value(w).unwrap_or(serde_json::Value::Null);
    unpacked(&mut v, w);
    v["dev"] = dev.into();
    v
}

/// The item the page receives for `body`.
pub fn item(body: &Body, proof: &Proof, image: Option<&ImageDone>) -> serde_json::Value {
    let mut v = serde_json::to_value(body).unwrap_or(serde_json::Value::Null);
    if let Some(w) = &body.wave {
        unpacked(&mut v, w);
    }
    if let Some(media) = v.get_mut("media").and_then(|m| m.as_object_mut()) {
        media.remove("data");
    }
    if let Some(done) = image {
        v["image"] = serde_json::to_value(done).unwrap_or_default();
    }
    v["msg"] = serde_json::json!({
        "id": proof.id,
        "kid": proof.kid,
        "stored": proof.stored_ms,
        "verified": proof.verified.is_ok(),
        "why": proof.verified.as_ref().err(),
        "clock_fix": proof.clock_fix_us,
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Channel, Code, Unit};
    use crate::wave::Encoding;

    #[test]
    fn a_waves_packed_samples_reach_the_page_as_the_exact_integers() {
        let samples: Vec<i32> = vec![-3, 0, 7, 1000, -32768, 32767];
        let data = crate::wave::pack(&samples, Encoding::Rice).unwrap();
        let wave = Wave {
            stream: "ecg".into(),
            rate: 360.0,
            i0: 42,
            t0: 1,
            n: samples.len() as u32,
            ch: vec![Channel {
                label: "MLII".into(),
                code: Code { mdc: 131330, loinc: None, name: None },
                unit: Unit { ucum: "mV".into(), mdc: None },
                gain: 0.005,
                base: 1024,
                enc: "rice".into(),
                data,
            }],
        };
        let body = crate::pipeline::make_body("s", "g", None, crate::pipeline::Payload::Wave(wave), 7, 1, None);
        let proof =
            Proof { id: 9, kid: "ab".into(), stored_ms: 5.0, verified: Err("key revoked".into()), clock_fix_us: -7 };
        let v = item(&body, &proof, None);
        let got: Vec<i32> = v["ch"][0]["s"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect();
        assert_eq!(got, samples);
        assert!(v["ch"][0].get("data").is_none(), "the packed bytes are not sent");
        assert_eq!((v["i0"].as_u64(), v["seq"].as_u64()), (Some(42), Some(7)));
        assert_eq!(v["msg"]["verified"], false);
        assert_eq!(v["msg"]["why"], "key revoked");
        assert_eq!(
            (v["t"].as_i64(), v["msg"]["clock_fix"].as_i64()),
            (Some(1), Some(-7)),
            "signed time, and the fix apart"
        );
        let tap = wave_json("ecg-1", body.wave.as_ref().unwrap());
        assert_eq!((tap["dev"].as_str(), tap["ch"][0]["s"].clone()), (Some("ecg-1"), v["ch"][0]["s"].clone()));
    }
}
