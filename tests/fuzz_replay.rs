//! Every fuzz target (`fuzz/fuzz_targets/`) in CI without a fuzzer build: each committed seed of
//! `fuzz/corpus/<target>/` (and any crash reproducer saved there) is replayed through the same
//! entry point (`drm_origin::fuzz_api`), then mutated deterministically (bit flips, byte edits,
//! cuts, duplicated and spliced slices, dictionary tokens from `fuzz/mp4.dict`). A panic, an
//! overflow (release builds check overflow) or a broken property fails the test and names the
//! seed and the mutation; the fixed seed makes every failure reproducible.
//!
//! Real coverage-guided runs: `bash scripts/fuzz.sh [seconds per target]` (cargo-fuzz).

use std::path::{Path, PathBuf};

/// Mutations per seed file.
const MUTATIONS_PER_SEED: usize = 4000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/make-fuzz-corpus.py writes the seeds)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

/// Tokens of `fuzz/mp4.dict` (`"..."` lines, `\xNN` escapes).
fn dictionary() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/mp4.dict")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(q) = line.split_once('"').map(|(_, r)| r) else { continue };
        let Some(body) = q.rsplit_once('"').map(|(b, _)| b) else { continue };
        let mut tok = Vec::new();
        let b = body.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
                tok.push(u8::from_str_radix(std::str::from_utf8(&b[i + 2..i + 4]).unwrap(), 16).unwrap());
                i += 4;
            } else {
                tok.push(b[i]);
                i += 1;
            }
        }
        out.push(tok);
    }
    out
}

fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>], dict: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)];
            }
            2 if len > 0 => d.truncate(rng.below(len)),
            3 => {
                let i = rng.below(len + 1);
                d.insert(i, rng.next() as u8);
            }
            4 if len > 1 => {
                let i = rng.below(len);
                d.remove(i);
            }
            5 if len > 4 => {
                // A 32-bit field (box sizes, counts) set to an edge value.
                let i = rng.below(len - 3);
                let v: u32 = [0, 1, 7, 8, 0x7fff_ffff, 0xffff_ffff, len as u32][rng.below(7)];
                d[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            6 if len > 1 => {
                // A slice duplicated in place.
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let s = d[a..b].to_vec();
                let at = rng.below(d.len() + 1);
                d.splice(at..at, s);
            }
            7 if !others.is_empty() => {
                // Splice: our head, another seed's tail.
                let o = &others[rng.below(others.len())];
                let cut = rng.below(d.len() + 1);
                let from = rng.below(o.len() + 1);
                d.truncate(cut);
                d.extend_from_slice(&o[from..]);
            }
            8 if !dict.is_empty() => {
                let t = &dict[rng.below(dict.len())];
                let at = rng.below(d.len() + 1);
                if rng.below(2) == 0 && at + t.len() <= d.len() {
                    d[at..at + t.len()].copy_from_slice(t);
                } else {
                    d.splice(at..at, t.iter().copied());
                }
            }
            _ => {}
        }
    }
    d
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_mutations() {
    let dict = dictionary();
    let mut runs = 0usize;
    for (target, run) in drm_origin::fuzz_api::TARGETS {
        let files = corpus(target);
        let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
        let dict: &[Vec<u8>] = if *target == "mp4_index" || *target == "nal_subsamples" { &dict } else { &[] };
        for (path, seed) in files.iter().zip(&seeds) {
            let name = path.file_name().unwrap().to_string_lossy();
            if let Err(e) = std::panic::catch_unwind(|| run(seed)) {
                panic!("{target}: seed {name} fails: {e:?}");
            }
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (seed.len() as u64).wrapping_mul(0x100_0000_01b3));
            for m in 0..MUTATIONS_PER_SEED {
                let input = mutate(&mut rng, seed, &seeds, dict);
                if let Err(e) = std::panic::catch_unwind(|| run(&input)) {
                    let out = std::env::temp_dir().join(format!("fuzz-replay-{target}-{name}-{m}"));
                    let _ = std::fs::write(&out, &input);
                    panic!("{target}: mutation {m} of seed {name} fails: {e:?} (input saved to {})", out.display());
                }
                runs += 1;
            }
        }
    }
    assert!(runs > 10_000, "only {runs} runs");
}
