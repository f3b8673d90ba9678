//! The hub's signature check (`PublicKey::verify`, ed25519-dalek with the key decompressed once)
//! accepts exactly what ring accepts: on Wycheproof's 151 EdDSA cases (and as Wycheproof says),
//! on mangled signatures, on small-order and non-canonical encodings of R and of the key, and on
//! signatures made with a torsion part in R or in the key, where cofactorless (ring) and
//! cofactored verifiers differ. ring is the reference: it signs, and other hubs verify as it does.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::{EdwardsPoint, Scalar};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use spokegate::sign::PublicKey;

fn ring_says(key: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, key).verify(msg, sig).is_ok()
}

fn hub_says(key: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    PublicKey::from_raw(*key).verify(msg, sig)
}

/// Checks one case in both; returns the verdict.
fn agree(key: &[u8; 32], msg: &[u8], sig: &[u8], what: &str) -> bool {
    let (ring, hub) = (ring_says(key, msg, sig), hub_says(key, msg, sig));
    assert_eq!(hub, ring, "{what}: the hub's verifier says {hub}, ring {ring} (key {})", hex::encode(key));
    ring
}

fn bytes(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap()
}

#[test]
fn every_wycheproof_case_is_judged_as_wycheproof_states_by_both() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wycheproof/ed25519_test.json"))
            .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (mut valid, mut invalid) = (0, 0);
    for group in doc["testGroups"].as_array().unwrap() {
        let key: [u8; 32] = bytes(group["publicKey"]["pk"].as_str().unwrap()).try_into().unwrap();
        for case in group["tests"].as_array().unwrap() {
            let (msg, sig) = (bytes(case["msg"].as_str().unwrap()), bytes(case["sig"].as_str().unwrap()));
            let want = match case["result"].as_str().unwrap() {
                "valid" => true,
                "invalid" => false,
                other => panic!("tcId {}: result {other}", case["tcId"]),
            };
            let said = agree(&key, &msg, &sig, &format!("Wycheproof tcId {}", case["tcId"]));
            assert_eq!(said, want, "Wycheproof tcId {} ({})", case["tcId"], case["comment"]);
            if want {
                valid += 1
            } else {
                invalid += 1
            }
        }
    }
    assert_eq!((valid, invalid, valid + invalid), (88, 63, doc["numberOfTests"].as_u64().unwrap() as usize));
}

/// Encodings of the eight small-order points, and non-canonical encodings of some of them.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut all: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect();
    for p in EIGHT_TORSION.iter() {
        let mut signed = p.compress().to_bytes();
        signed[31] ^= 0x80; // the other sign of x (the same point when x = 0)
        all.push(signed);
    }
    // y = p + 1 and y = p (non-canonical 1 and 0), y = p - 1 with the sign bit.
    let mut y = [0xffu8; 32];
    y[31] = 0x7f;
    for low in [0xee, 0xed, 0xec] {
        let mut e = y;
        e[0] = low;
        all.push(e);
        e[31] |= 0x80;
        all.push(e);
    }
    all
}

fn ring_key(seed: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
}

#[test]
fn mangled_signatures_and_odd_encodings_of_r_are_judged_alike() {
    let mut accepted = 0;
    let mut cases = 0;
    for seed in 1..=3u8 {
        let kp = ring_key(seed);
        let key: [u8; 32] = kp.public_key().as_ref().try_into().unwrap();
        for n in 0..24u32 {
            let msg = format!("spokegate obs {seed} {n}").into_bytes();
            let sig = kp.sign(&msg).as_ref().to_vec();
            accepted += agree(&key, &msg, &sig, "an honest signature") as usize;
            cases += 1;
            // One bit flipped, in R, in S, or in the message.
            let bit = (n as usize * 37) % 512;
            let mut flipped = sig.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(!agree(&key, &msg, &flipped, "a flipped signature bit"));
            let mut other = msg.clone();
            other[n as usize % msg.len()] ^= 0x20;
            assert!(!agree(&key, &other, &sig, "a changed message"));
            // S + L: the same scalar, not reduced (malleability).
            let s = Scalar::from_canonical_bytes(sig[32..].try_into().unwrap()).unwrap();
            let mut malleable = sig.clone();
            malleable[32..].copy_from_slice(&add_group_order(&s.to_bytes()));
            assert!(!agree(&key, &msg, &malleable, "S + L"));
            cases += 3;
        }
        for r in small_order_encodings() {
            let mut sig = kp.sign(b"x").as_ref().to_vec();
            sig[..32].copy_from_slice(&r);
            agree(&key, b"x", &sig, "a small-order or non-canonical R");
            cases += 1;
        }
    }
    assert_eq!(accepted, 72, "every honest signature verifies");
    assert!(cases > 300);
}

/// S + L as 32 little-endian bytes (below 2^254 for S < L, so it fits).
fn add_group_order(s: &[u8; 32]) -> [u8; 32] {
    // L = 2^252 + 27742317777372353535851937790883648493
    let l = bytes("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = s[i] as u16 + l[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 32 bytes");
    out
}

/// An RFC 8032 signature computed by hand, so R or the key may carry a torsion part.
fn sign_raw(a: &Scalar, key: &[u8; 32], r: &Scalar, torsion_in_r: &EdwardsPoint, msg: &[u8]) -> Vec<u8> {
    let big_r = (ED25519_BASEPOINT_POINT * r + torsion_in_r).compress().to_bytes();
    let mut h = ring::digest::Context::new(&ring::digest::SHA512);
    h.update(&big_r);
    h.update(key);
    h.update(msg);
    let k = Scalar::from_bytes_mod_order_wide(h.finish().as_ref().try_into().unwrap());
    let s = r + k * a;
    [big_r.as_slice(), s.as_bytes()].concat()
}

#[test]
fn torsion_in_r_or_in_the_key_is_judged_cofactorless_like_ring() {
    let (mut accepted_torsioned, mut cases) = (0, 0);
    for i in 0..64u64 {
        let a = Scalar::from(1_000_003u64 * (i + 7));
        let r = Scalar::from(77_777u64 * (i + 3));
        let msg = format!("reading {i}").into_bytes();
        for (t, torsion) in EIGHT_TORSION.iter().enumerate() {
            // A prime-order key, R with a torsion part: cofactorless verifiers refuse unless T = 0.
            let key = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
            let sig = sign_raw(&a, &key, &r, torsion, &msg);
            let ok = agree(&key, &msg, &sig, "R with a torsion part");
            assert_eq!(ok, t == 0, "torsion point {t} in R");
            // A key with a torsion part: accepted when [k]T is the identity, by both or by neither.
            let mixed = (ED25519_BASEPOINT_POINT * a + torsion).compress().to_bytes();
            let sig = sign_raw(&a, &mixed, &r, &EdwardsPoint::default(), &msg);
            if agree(&mixed, &msg, &sig, "a key with a torsion part") && t != 0 {
                accepted_torsioned += 1;
            }
            cases += 2;
        }
        // Small-order keys with R = identity and S = 0, and with random R.
        for key in small_order_encodings() {
            let identity = EdwardsPoint::default().compress().to_bytes();
            agree(&key, &msg, &[identity.as_slice(), &[0u8; 32]].concat(), "a small-order key, R = identity, S = 0");
            agree(&key, &msg, &sign_raw(&a, &key, &r, &EdwardsPoint::default(), &msg), "a small-order key");
            cases += 2;
        }
    }
    // Cofactorless: some (not all) signatures under a torsioned key verify, in both.
    assert!(accepted_torsioned > 0 && accepted_torsioned < 64 * 7, "{accepted_torsioned}");
    assert!(cases > 2000);
}
