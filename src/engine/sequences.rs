//! Frames gathered into image sequences: a frame for a sequence rule joins its sequence, which
//! fires when no frame has come for the rule's `settle` (or at once when `expect:` is complete).
//! At fire time the folder listing is the sequence, so a re-rendered frame re-runs the whole
//! sequence, never a one-frame movie; its identity is its `####` path, its version a specified
//! digest of its frames.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::engine::sequencer::{Gathering, Purpose, SequenceKey};
use crate::media::sequence::{FrameName, Sequence};
use crate::os::version::FileVersion;
use crate::route::plan;
use crate::rules::EventKind;
use crate::store::queue::{RootedPath, Write};

use super::Engine;
use super::node::outbox::Then;

impl Engine {
    /// A frame for a sequence rule: gather it with its sequence.
    pub(super) fn on_frame(
        &mut self,
        index: usize,
        root: usize,
        rel: &Path,
        purpose: Purpose,
        now: Instant,
    ) {
        let set = self.set.clone();
        let rule = &set.file.rules[index];
        let name = rel.file_name().unwrap_or_default();
        let Some(frame) = FrameName::parse(name.as_encoded_bytes()) else {
            tracing::debug!(rule = %rule.name, path = %rel.display(), "no frame number; a sequence rule skips it");
            return;
        };
        let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let key = SequenceKey {
            rule: rule.name.clone(),
            root,
            dir,
            head: frame.head,
            tail: frame.tail,
        };
        if !self.sequences.contains(&key) {
            // Frames already in the folder belong to the sequence too (a re-render of one
            // frame re-runs the whole sequence, not a one-frame movie).
            let abs_dir = set.file.watch[root].path.join(&key.dir);
            let seen = crate::media::sequence::scan(&abs_dir, &key.head, &key.tail)
                .unwrap_or_default()
                .iter()
                .flat_map(|s| s.frames.iter().map(|f| f.number))
                .collect();
            let vars = plan::bindings(&set, index, &set.file.watch[root].path, rel);
            let expect = plan::expect_range(rule, &vars).unwrap_or_else(|e| {
                tracing::warn!(rule = %rule.name, path = %rel.display(), error = %e, "cannot read the expected range; waiting for the frames to settle instead");
                None
            });
            self.sequences.begin(
                key.clone(),
                Gathering {
                    seen,
                    expect,
                    purpose,
                    deadline: now,
                },
            );
        }
        let quiet = if self.options.once {
            Duration::ZERO
        } else {
            rule.settle
        };
        self.sequences
            .arrive(&key, frame.frame, purpose, now, quiet);
    }

    /// A sequence is due: list its folder and run (or baseline) each sequence found there.
    fn fire_sequence(&mut self, key: SequenceKey, gathering: Gathering) {
        let set = self.set.clone();
        let Some(index) = set.index_of(&key.rule) else {
            return;
        };
        let root_path = &set.file.watch[key.root].path;
        let abs_dir = root_path.join(&key.dir);
        let found = match crate::media::sequence::scan(&abs_dir, &key.head, &key.tail) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(rule = %key.rule, dir = %abs_dir.display(), error = %e, "cannot list the sequence's folder");
                return;
            }
        };
        for mut sequence in found {
            // Only frames the rule matches, and not the rule's own products.
            sequence.frames.retain(|f| {
                let rel = key.dir.join(&f.name);
                set.route(&rel, EventKind::MovedTo).contains(&index)
            });
            // A sequence rule's movie covers only the frames its `frames:` allows.
            if let Some(first) = sequence.frames.first() {
                let rel = key.dir.join(&first.name);
                let rule = &set.file.rules[index];
                if let Some((cut, dropped)) = crate::route::cut::restrict_sequence(
                    &self.cuts.index,
                    rule,
                    &rel,
                    &mut sequence,
                ) && dropped > 0
                {
                    tracing::info!(rule = %key.rule, sequence = %sequence.hashes_path().display(), dropped, cut = %cut.cut, revision = cut.revision, frames = rule.frames.as_str(), "frames outside the allowed range left out of the sequence");
                }
            }
            let Some(version) = sequence_version(&sequence) else {
                continue;
            };
            let identity = sequence.hashes_path();
            let rooted = RootedPath {
                root: set.file.watch[key.root].name.clone(),
                rel: identity
                    .strip_prefix(root_path)
                    .map_or_else(|_| identity.clone(), Path::to_path_buf),
            };
            match gathering.purpose {
                Purpose::Baseline => {
                    if self.node.store.is_none() {
                        self.planned.ledger.record(&key.rule, &identity, version);
                    }
                    if self.node.store.is_some() {
                        let files = vec![(rooted.clone(), version)];
                        self.node
                            .committer
                            .push(Write::Baseline { files }, Then::Nothing);
                    }
                    continue;
                }
                Purpose::CatchUp => {
                    let wanted = self.node.store.as_mut().is_some_and(|store| {
                        store
                            .wants_catch_up(&key.rule, &rooted, version)
                            .unwrap_or(true)
                    });
                    if !wanted {
                        if self.node.store.is_none() {
                            self.planned.ledger.record(&key.rule, &identity, version);
                        }
                        continue;
                    }
                }
                Purpose::Run => {}
            }
            let first = key.dir.join(&sequence.frames[0].name);
            self.dispatch_subject(index, key.root, &first, Some(version), Some(sequence));
        }
    }

    /// Sequences whose frames stopped coming (or are complete) fire; in `--once`, only when
    /// every file present has been seen.
    pub(super) fn fire_due_sequences(&mut self, now: Instant, source_empty: bool) {
        // In --once, sequences fire when every file present has been seen.
        if !self.options.once || source_empty {
            for (key, gathering) in self.sequences.drain_ready(now) {
                self.fire_sequence(key, gathering);
            }
        }
    }
}

/// A sequence's version: a digest of each frame's number, inode, size and mtime, so a frame
/// re-rendered (or added, or removed) makes a new version and the same frames never run twice.
///
/// The digest is xxh3-64 over each frame's number, inode, size and mtime as little-endian
/// bytes: specified, so a store written by one build is read the same by any other.
pub fn sequence_version(sequence: &Sequence) -> Option<FileVersion> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let (mut size, mut mtime_ns, mut dev) = (0u64, 0i128, 0u64);
    for frame in &sequence.frames {
        let v = FileVersion::of(&sequence.frame_path(frame))?;
        hasher.update(&frame.number.to_le_bytes());
        hasher.update(&v.ino.to_le_bytes());
        hasher.update(&v.size.to_le_bytes());
        hasher.update(&v.mtime_ns.to_le_bytes());
        size += v.size;
        mtime_ns = mtime_ns.max(v.mtime_ns);
        dev = v.dev;
    }
    (!sequence.frames.is_empty()).then(|| FileVersion {
        dev,
        ino: hasher.digest() >> 1,
        size,
        mtime_ns,
    })
}

/// The sequence a stored `dir/name.####.ext` path names, as it is on disk now.
pub fn reread_sequence(hashes_path: &Path) -> Option<Sequence> {
    let name = hashes_path.file_name()?.as_encoded_bytes();
    let end = name.iter().rposition(|&b| b == b'#')? + 1;
    let start = name[..end]
        .iter()
        .rposition(|&b| b != b'#')
        .map_or(0, |i| i + 1);
    let dir = hashes_path.parent()?;
    crate::media::sequence::scan(dir, &name[..start], &name[end..])
        .ok()?
        .into_iter()
        .find(|s| s.hashes_path() == hashes_path && !s.frames.is_empty())
}
