//! Writer tests: deterministic bytes in two folders, reruns that write nothing, repairs,
//! generations and removals, and objects that the reference client opens.

use std::sync::Arc;

use super::*;
use crate::client::store::State;
use crate::client::verify;
use crate::crypto::{Key, KeyId};
use crate::drm::ContentKey;
use crate::license::device::issue::EntryKey;
use crate::license::device::jose::{Drbg, PrivateKey};
use crate::license::device::registry::{DeviceState, Entitlement};

fn keys() -> OriginKeys {
    let d = Drbg::new(b"writer tests", b"origin");
    let master = zeroize::Zeroizing::new(*d.bytes::<32>(b"master"));
    OriginKeys::from_parts(master, vec![PrivateKey(d.secret_key(b"sign").unwrap())]).unwrap()
}

fn entry(id: &str, seed: u8) -> AssetEntry {
    let k = |class: &'static str, n: u8| EntryKey {
        class,
        key: Arc::new(ContentKey { name: class.into(), kid: KeyId([n; 16]), key: Key::new([n.wrapping_add(100); 16]) }),
    };
    AssetEntry {
        id: id.into(),
        policy: "p".into(),
        chained: false,
        roots: Vec::new(),
        keys: vec![k("audio", seed), k("video", seed + 1)],
    }
}

fn device(seed: &str) -> (DeviceRecord, PrivateKey) {
    let d = Drbg::new(seed.as_bytes(), b"device");
    let enc = PrivateKey(d.secret_key(b"enc").unwrap());
    let sig = PrivateKey(d.secret_key(b"sig").unwrap());
    let rec = DeviceRecord {
        id: crate::license::device::objects::new_uuid().unwrap(),
        subject: "s".into(),
        thumb: enc.public().thumbprint(),
        enc: enc.public(),
        sig: sig.public(),
        gen: 1,
        state: DeviceState::Active,
        chain: false,
        entitlement: Entitlement { policies: vec!["p".into()], assets: None, kids: None, until: i64::MAX },
        created: 0,
    };
    (rec, enc)
}

fn dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("drm-origin-writer-{}", crate::license::device::objects::new_uuid().unwrap()))
}

fn files(w: &Writer) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![w.public_root().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(w.public_root()).unwrap().display().to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

const NOW: i64 = 1_800_000_000;
const TTL: i64 = 7 * 86_400;

#[test]
fn same_inputs_same_bytes_and_reruns_write_nothing() {
    let k = keys();
    let (dev, _) = device("a");
    let catalog = vec![entry("x", 1), entry("y", 3)];
    let (a, b) = (Writer::open(&dir(), false).unwrap(), Writer::open(&dir(), false).unwrap());
    let ra = a.write_device(&k, &dev, &[], &catalog, NOW, TTL).unwrap();
    assert_eq!((ra.written, ra.unchanged), (3, 0));
    b.write_device(&k, &dev, &[], &catalog, NOW + 60, TTL).unwrap();
    assert_eq!(files(&a), files(&b), "two writers, same period: same bytes");
    let again = a.write_device(&k, &dev, &[], &catalog, NOW + 120, TTL).unwrap();
    assert_eq!((again.written, again.unchanged, again.removed), (0, 3, 0));
    // A new asset writes its license and the index, nothing else.
    let more = [catalog.clone(), vec![entry("z", 5)]].concat();
    let r = a.write_device(&k, &dev, &[], &more, NOW, TTL).unwrap();
    assert_eq!((r.written, r.unchanged), (2, 2));
    // A key change rewrites that asset's license only.
    let rekeyed = vec![entry("x", 9), entry("y", 3), entry("z", 5)];
    let r = a.write_device(&k, &dev, &[], &rekeyed, NOW, TTL).unwrap();
    assert_eq!((r.written, r.unchanged), (2, 2));
    // The next period renews every license.
    let r = a.write_device(&k, &dev, &[], &rekeyed, NOW + TTL, TTL).unwrap();
    assert_eq!(r.written, 4);
}

#[test]
fn altered_files_are_repaired_and_stale_ones_removed() {
    let k = keys();
    let (mut dev, _) = device("b");
    let catalog = vec![entry("x", 1), entry("y", 3)];
    let w = Writer::open(&dir(), false).unwrap();
    w.write_device(&k, &dev, &[], &catalog, NOW, TTL).unwrap();
    let lic = w.public_root().join(format!("{}/a/x.lic", device_folder(&dev.id, 1)));
    let mut bytes = std::fs::read(&lic).unwrap();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    std::fs::write(&lic, &bytes).unwrap();
    let r = w.write_device(&k, &dev, &[], &catalog, NOW, TTL).unwrap();
    assert_eq!(r.written, 1, "the altered license is rewritten (the index still matches)");
    assert!(w.check(&k).is_empty(), "{:?}", w.check(&k));
    // Entitlement narrowed to asset y: x's license goes.
    dev.entitlement.assets = Some(vec!["y".into()]);
    let r = w.write_device(&k, &dev, &[], &catalog, NOW, TTL).unwrap();
    assert_eq!(r.removed, 1);
    assert!(!lic.exists());
    // Next generation: the old one's folder is gone.
    dev.gen = 2;
    w.write_device(&k, &dev, &[], &catalog, NOW, TTL).unwrap();
    assert!(!w.public_root().join(device_folder(&dev.id, 1)).exists());
    assert!(w.public_root().join(format!("{}/index.json", device_folder(&dev.id, 2))).exists());
    w.remove_device(&dev.id).unwrap();
    assert!(files(&w).is_empty());
}

#[test]
fn the_client_opens_device_and_domain_licenses_and_refuses_the_rest() {
    let k = keys();
    let (dev, enc) = device("c");
    let (other, other_enc) = device("d");
    let catalog = vec![entry("x", 1)];
    let dom = DomainRecord {
        id: "6f1c2a4e-0000-4000-8000-000000000001".into(),
        subject: "s".into(),
        kv: 1,
        members: vec![dev.id.clone()],
    };
    let w = Writer::open(&dir(), false).unwrap();
    w.write_device(&k, &dev, std::slice::from_ref(&dom), &catalog, NOW, TTL).unwrap();
    w.write_domain(&k, &dom, &[dev.clone(), other.clone()], &catalog, NOW, TTL).unwrap();
    let mut state = State { v: 1, device_id: dev.id.clone(), gen: 1, ..State::default() };
    state.trusted_keys.insert(k.current().kid.clone(), k.current().key.public().to_json());
    let read = |rel: String| std::fs::read_to_string(w.public_root().join(rel)).unwrap();
    let lic = read(format!("{}/a/x.lic", device_folder(&dev.id, 1)));
    let (l, got) = verify::open_license(&mut state, &lic, &enc, NOW, 300).unwrap();
    assert_eq!(l.asset, "x");
    assert_eq!(got.0.get(&KeyId([2; 16])).map(|(key, c)| (*key.bytes(), c.as_str())), Some(([102u8; 16], "video")));
    // Rollback, expiry, another device's license, a dead generation.
    let mut later = state.clone();
    later.seqs.insert(verify::seq_key(&l), l.seq + 1);
    assert_eq!(verify::open_license(&mut later, &lic, &enc, NOW, 300).unwrap_err().reason(), Some("rollback"));
    assert_eq!(
        verify::open_license(&mut state.clone(), &lic, &enc, l.exp + 301, 300).unwrap_err().reason(),
        Some("expired")
    );
    let mut stale = state.clone();
    stale.gen = 2;
    assert_eq!(verify::open_license(&mut stale, &lic, &enc, NOW, 300).unwrap_err().reason(), Some("stale_generation"));
    let mut someone = state.clone();
    someone.device_id = other.id.clone();
    assert_eq!(
        verify::open_license(&mut someone, &lic, &other_enc, NOW, 300).unwrap_err().reason(),
        Some("wrong_device")
    );
    // The clock never runs back behind what was trusted.
    let mut rewound = state.clone();
    rewound.last_time = l.exp + 1000;
    assert_eq!(verify::open_license(&mut rewound, &lic, &enc, NOW, 300).unwrap_err().reason(), Some("expired"));
    // Domain: a member with the domain key opens it; without the key: wrong_domain.
    let dlic = read(format!("{}/a/x.lic", domain_folder(&dom.id, 1)));
    assert_eq!(
        verify::open_license(&mut state.clone(), &dlic, &enc, NOW, 300).unwrap_err().reason(),
        Some("wrong_domain")
    );
    let dkey = read(format!("{}/k/{}.dkey", domain_folder(&dom.id, 1), dev.id));
    let mut member = state.clone();
    member.domains.insert(dom.id.clone(), crate::client::store::HeldDomain { keys: [(1, dkey.clone())].into() });
    assert!(verify::open_license(&mut member, &dlic, &enc, NOW, 300).is_ok());
    // The non-member holding a member's domain-key file cannot open it.
    let mut thief = someone.clone();
    thief.domains.insert(dom.id.clone(), crate::client::store::HeldDomain { keys: [(1, dkey)].into() });
    assert!(verify::open_license(&mut thief, &dlic, &other_enc, NOW, 300).is_err());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let k = keys();
    let dbg = format!("{k:?}");
    assert!(!dbg.contains("PRIVATE") && dbg.contains(&k.current().kid));
    let s = crate::license::device::DeviceSettings {
        registry_url: "postgres://app:hunter2@db.internal:5432/drm?sslmode=require".into(),
        secret_file: "m".into(),
        signing_key: "s".into(),
        max_devices_per_subject: 1,
        max_domain_members: 1,
        request_skew_secs: 1,
        register_claims: Default::default(),
        entitlement_grace_secs: 0,
        licenses_dir: "l".into(),
        direct_ttl_secs: 60,
        regenerate_every: std::time::Duration::from_secs(1),
        public_url: None,
        fsync: false,
    };
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("app:") && dbg.contains("db.internal"), "{dbg}");
    let mut keys = verify::Keys::default();
    keys.0.insert(KeyId([1; 16]), (Key::new([0xab; 16]), "video".into()));
    assert!(!format!("{keys:?}").contains("abab"));
}

#[test]
fn chaining_devices_get_roots_others_direct_licenses() {
    use crate::drm::RootKeyVersion;
    let k = keys();
    let v1 = RootKeyVersion { version: 1, not_before: 0, not_after: NOW + 3600 };
    let v2 = RootKeyVersion { version: 2, not_before: NOW - 60, not_after: i64::MAX };
    let chained = |id: &str, seed: u8| AssetEntry { chained: true, roots: vec![v1, v2], ..entry(id, seed) };
    let catalog = vec![chained("x", 1), chained("y", 3), entry("d", 7)];
    let (mut dev, enc) = device("chain");
    dev.chain = true;
    let w = Writer::open(&dir(), false).unwrap();
    let r = w.write_device(&k, &dev, &[], &catalog, NOW, TTL).unwrap();
    let folder = device_folder(&dev.id, 1);
    let names: Vec<String> = files(&w).into_iter().map(|(p, _)| p).filter(|p| p.starts_with(&folder)).collect();
    let want: Vec<String> =
        ["a/d.lic", "index.json", "root/p.1.rlic", "root/p.2.rlic"].iter().map(|n| format!("{folder}/{n}")).collect();
    assert_eq!(names, want, "one root per live version, no licenses for chained assets");
    assert_eq!(r.written, 4);
    assert_eq!(w.write_device(&k, &dev, &[], &catalog, NOW + 60, TTL).unwrap().written, 0, "rerun writes nothing");
    // The root opens with the device key and yields the derived root key; version 1's expiry is
    // capped by the version's end.
    let mut state = State { device_id: dev.id.clone(), gen: 1, ..State::default() };
    state.trusted_keys.insert(k.current().kid.clone(), k.current().key.public().to_json());
    for (v, exp) in [(1u32, NOW + 3600), (2, issue::period(NOW, TTL, i64::MAX).unwrap().exp)] {
        let text = std::fs::read_to_string(w.public_root().join(format!("{folder}/root/p.{v}.rlic"))).unwrap();
        let (root, key) = verify::open_root(&mut state, &text, &enc, NOW, 0).unwrap();
        assert_eq!((root.rkid.as_str(), root.exp), (format!("p.{v}").as_str(), exp));
        assert_eq!(*key, *k.root_key("p", v));
        assert!(
            verify::open_root(&mut state, &text, &enc, exp + 1, 0).is_err_and(|e| e.reason() == Some("root_expired"))
        );
    }
    // A device that cannot chain gets the direct licenses of the same assets (legacy fallback).
    let (plain, _) = device("plain");
    w.write_device(&k, &plain, &[], &catalog, NOW, TTL).unwrap();
    let f = device_folder(&plain.id, 1);
    let names: Vec<String> = files(&w).into_iter().map(|(p, _)| p).filter(|p| p.starts_with(&f)).collect();
    assert_eq!(names, ["a/d.lic", "a/x.lic", "a/y.lic", "index.json"].map(|n| format!("{f}/{n}")));
}
