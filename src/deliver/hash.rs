//! The content hashes a copy or move computes while it reads: xxh64, xxh3 (64-bit), MD5 and
//! SHA-1, written as ASC MHL and the usual command-line tools write them (lowercase hex,
//! `xxhsum`'s and `md5sum`'s digits), plus the C4 id ASC MHL uses to name its own files.
//!
//! One [`Hashes`] feeds every requested algorithm from the same buffer, so a file is read once
//! however many hashes a rule asks for.

use md5::Digest as _;

/// A hash a rule may ask for in `copy:`/`move:` (`hash:`); in a plan's text by its name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    /// xxHash 64-bit, seed 0 (`xxhsum -H64`; ASC MHL's `xxh64`).
    Xxh64,
    /// XXH3 64-bit, seed 0 (`xxhsum -H3`; ASC MHL's `xxh3`).
    Xxh3,
    /// MD5 (`md5sum`).
    Md5,
    /// SHA-1 (`sha1sum`).
    Sha1,
}

impl HashKind {
    /// Every kind, in the order `hash:` lists them in messages.
    pub const ALL: [HashKind; 4] = [
        HashKind::Xxh64,
        HashKind::Xxh3,
        HashKind::Md5,
        HashKind::Sha1,
    ];

    /// The name used in `rules.yaml`, the job log and ASC MHL's XML.
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::Xxh64 => "xxh64",
            HashKind::Xxh3 => "xxh3",
            HashKind::Md5 => "md5",
            HashKind::Sha1 => "sha1",
        }
    }

    /// The kind named `name` (as [`HashKind::as_str`] writes it), if any.
    pub fn parse(name: &str) -> Option<HashKind> {
        HashKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for HashKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

enum State {
    Xxh64(Box<xxhash_rust::xxh64::Xxh64>),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
}

/// Several hashes of one stream, fed together.
pub struct Hashes {
    states: Vec<(HashKind, State)>,
}

impl Hashes {
    /// Fresh hashers for `kinds` (each once, in the given order).
    pub fn new(kinds: &[HashKind]) -> Hashes {
        let mut states: Vec<(HashKind, State)> = Vec::new();
        for &kind in kinds {
            if states.iter().any(|(k, _)| *k == kind) {
                continue;
            }
            let state = match kind {
                HashKind::Xxh64 => State::Xxh64(Box::new(xxhash_rust::xxh64::Xxh64::new(0))),
                HashKind::Xxh3 => State::Xxh3(Box::new(xxhash_rust::xxh3::Xxh3::new())),
                HashKind::Md5 => State::Md5(md5::Md5::new()),
                HashKind::Sha1 => State::Sha1(sha1::Sha1::new()),
            };
            states.push((kind, state));
        }
        Hashes { states }
    }

    /// Feeds `data` to every hasher.
    pub fn update(&mut self, data: &[u8]) {
        for (_, state) in &mut self.states {
            match state {
                State::Xxh64(h) => h.update(data),
                State::Xxh3(h) => h.update(data),
                State::Md5(h) => h.update(data),
                State::Sha1(h) => h.update(data),
            }
        }
    }

    /// The digests, lowercase hex, in the order the kinds were given.
    pub fn finish(self) -> Vec<(HashKind, String)> {
        self.states
            .into_iter()
            .map(|(kind, state)| {
                let hex = match state {
                    State::Xxh64(h) => format!("{:016x}", h.digest()),
                    State::Xxh3(h) => format!("{:016x}", h.digest()),
                    State::Md5(h) => to_hex(&h.finalize()),
                    State::Sha1(h) => to_hex(&h.finalize()),
                };
                (kind, hex)
            })
            .collect()
    }
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The C4 id of `data` (SMPTE ST 2114): SHA-512 as a base-58 number, padded with `1` (zero) to
/// 88 digits after `c4`. ASC MHL names each generation file by it in the chain file.
pub fn c4_id(data: &[u8]) -> String {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut number: Vec<u8> = sha2::Sha512::digest(data).to_vec();
    let mut digits = Vec::with_capacity(88);
    // Long division of the big-endian 512-bit number by 58, one digit at a time.
    while number.iter().any(|&b| b != 0) {
        let mut remainder: u32 = 0;
        for byte in &mut number {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 58) as u8;
            remainder = value % 58;
        }
        digits.push(ALPHABET[remainder as usize]);
    }
    while digits.len() < 88 {
        digits.push(b'1');
    }
    digits.reverse();
    format!("c4{}", String::from_utf8_lossy(&digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_of(data: &[u8]) -> Vec<(HashKind, String)> {
        let mut hashes = Hashes::new(&HashKind::ALL);
        // Fed in uneven pieces: the result must not depend on the buffer size.
        for piece in data.chunks(7) {
            hashes.update(piece);
        }
        hashes.finish()
    }

    #[test]
    fn digests_match_the_published_test_vectors() {
        // xxhsum -H64 / -H3, md5sum, sha1sum of the empty input and of "abc".
        let expect = |kind, hex: &str| (kind, hex.to_string());
        assert_eq!(
            all_of(b""),
            [
                expect(HashKind::Xxh64, "ef46db3751d8e999"),
                expect(HashKind::Xxh3, "2d06800538d394c2"),
                expect(HashKind::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
                expect(HashKind::Sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            ]
        );
        assert_eq!(
            all_of(b"abc"),
            [
                expect(HashKind::Xxh64, "44bc2cf5ad770999"),
                expect(HashKind::Xxh3, "78af5f94892f3950"),
                expect(HashKind::Md5, "900150983cd24fb0d6963f7d28e17f72"),
                expect(HashKind::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            ]
        );
    }

    #[test]
    fn each_kind_is_computed_once_in_the_order_asked() {
        let hashes = Hashes::new(&[HashKind::Md5, HashKind::Xxh64, HashKind::Md5]).finish();
        let kinds: Vec<HashKind> = hashes.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [HashKind::Md5, HashKind::Xxh64]);
    }

    #[test]
    fn names_round_trip() {
        for kind in HashKind::ALL {
            assert_eq!(HashKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(HashKind::parse("xxh128"), None);
    }

    #[test]
    fn c4_id_matches_the_reference_implementation() {
        // python3 -c 'from ascmhl import hasher; print(hasher.hash_data(b"", "c4"))' (and b"abc")
        assert_eq!(
            c4_id(b""),
            "c459dsjfscH38cYeXXYogktxf4Cd9ibshE3BHUo6a58hBXmRQdZrAkZzsWcbWtDg5oQstpDuni4Hirj75GEmTc1sFT"
        );
        assert_eq!(
            c4_id(b"abc"),
            "c45S4rnaTNWonxss1u8LzsaJdEph1AJhWUF4sh2waXKMsutyfAxg4ybUeuXVWS9HdNcEypmeXn8FZGonD4w1rj9DZp"
        );
    }
}
