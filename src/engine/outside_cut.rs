//! `outside_cut`: frames of a shot arriving outside its cut's `head_in..tail_out` (whatever
//! the rule's `frames:` does with them), told once per shot and cut revision. A render of 500
//! frames outside the cut is one message: frames are gathered until none came for
//! [`QUIET`] (at most [`LONGEST`] after the first), then the notice carries their count and
//! first and last frame; later frames of that shot and revision are not told again. A new
//! revision is news again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::edit::FrameClass;
use crate::exec::notifier::{CutAbout, Notice};
use crate::route::cut::{CutIndex, frame_of, shot_of};
use crate::route::matcher::RuleSet;
use crate::rules::NotifyEvent;

use super::Engine;

/// How long no frame outside may arrive before the shot's notice goes out.
pub const QUIET: Duration = Duration::from_secs(2);

/// Longest a notice waits after the first frame outside, however frames keep coming.
pub const LONGEST: Duration = Duration::from_secs(30);

/// A shot in one revision of a cut.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The cut.
    pub cut: String,
    /// Its revision.
    pub revision: i64,
    /// The shot.
    pub shot: String,
}

/// Frames outside gathered for one shot.
#[derive(Debug)]
struct Tally {
    rule: String,
    path: PathBuf,
    frames: BTreeSet<i64>,
    first_seen: Instant,
    last_seen: Instant,
}

impl Tally {
    fn due(&self) -> Instant {
        (self.last_seen + QUIET).min(self.first_seen + LONGEST)
    }
}

/// One notice due: a shot, its frames outside, the rule and file of the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outside {
    /// The shot and revision.
    pub key: Key,
    /// The rule that routed the first frame (whose targets are told).
    pub rule: String,
    /// The first frame's file.
    pub path: PathBuf,
    /// How many distinct frames.
    pub count: u64,
    /// The lowest.
    pub first: i64,
    /// The highest.
    pub last: i64,
}

/// The shots gathering frames outside, and those already told.
#[derive(Debug, Default)]
pub struct OutsideWatch {
    pending: HashMap<Key, Tally>,
    told: HashSet<Key>,
}

impl OutsideWatch {
    /// Notes `frame` of `key` outside; ignored once that shot and revision was told.
    pub fn saw(&mut self, key: Key, frame: i64, rule: &str, path: &Path, now: Instant) {
        if self.told.contains(&key) {
            return;
        }
        let tally = self.pending.entry(key).or_insert_with(|| Tally {
            rule: rule.to_string(),
            path: path.to_path_buf(),
            frames: BTreeSet::new(),
            first_seen: now,
            last_seen: now,
        });
        tally.frames.insert(frame);
        tally.last_seen = now;
    }

    /// When the next notice is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(Tally::due).min()
    }

    /// The notices due at `now`, each shot and revision marked told.
    pub fn due(&mut self, now: Instant) -> Vec<Outside> {
        let keys: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, t)| t.due() <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(tally) = self.pending.remove(&key) else {
                continue;
            };
            self.told.insert(key.clone());
            out.push(Outside {
                key,
                rule: tally.rule,
                path: tally.path,
                count: tally.frames.len() as u64,
                first: tally.frames.first().copied().unwrap_or_default(),
                last: tally.frames.last().copied().unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| a.key.shot.cmp(&b.key.shot));
        out
    }

    /// Forgets the told shots whose revision is no longer the one `index` routes by: only
    /// the current revisions can be told again, and the memory stays one entry per shot.
    pub fn forget_old(&mut self, index: &CutIndex) {
        self.told.retain(|k| {
            index
                .get(&k.shot)
                .is_some_and(|c| c.cut == k.cut && c.revision == k.revision)
        });
    }
}

impl Engine {
    /// Notes a frame that arrived (routed to the rules `routed`) when its shot's cut leaves it
    /// outside `head_in..tail_out`; its shot is named by the first of those rules that has a
    /// target wanting `outside_cut` and a `shot` capture. Costs nothing without cuts, and one
    /// parse of the name when no target wants it.
    pub(super) fn note_outside(
        &mut self,
        set: &RuleSet,
        routed: &[usize],
        rel: &Path,
        abs: &Path,
        now: Instant,
    ) {
        if self.cuts.index.is_empty() {
            return;
        }
        let Some(frame) = frame_of(rel) else {
            return;
        };
        // Targets first: without one that wants `outside_cut`, no second run of the regex.
        let Some((rule, shot)) = routed.iter().find_map(|&i| {
            let rule = &set.file.rules[i];
            let wanted = rule
                .notify_targets(&set.file)
                .iter()
                .any(|t| t.wants(NotifyEvent::OutsideCut));
            wanted
                .then(|| shot_of(rule, rel))
                .flatten()
                .map(|shot| (rule, shot))
        }) else {
            return;
        };
        let Some(cut) = self.cuts.index.get(shot) else {
            return;
        };
        if cut.classify(frame) != FrameClass::Outside {
            return;
        }
        let key = Key {
            cut: cut.cut.clone(),
            revision: cut.revision,
            shot: shot.to_string(),
        };
        self.outside.saw(key, frame, &rule.name, abs, now);
    }

    /// Tells the `outside_cut` notices that are due.
    pub(super) fn tell_outside(&mut self, now: Instant) {
        for due in self.outside.due(now) {
            let Some(index) = self.set.index_of(&due.rule) else {
                continue;
            };
            let rule = &self.set.file.rules[index];
            let targets: Vec<_> = rule
                .notify_targets(&self.set.file)
                .iter()
                .filter(|t| t.wants(NotifyEvent::OutsideCut))
                .map(|t| std::sync::Arc::new(t.clone()))
                .collect();
            let k = &due.key;
            tracing::warn!(shot = %k.shot, cut = %k.cut, revision = k.revision, count = due.count, first = due.first, last = due.last, "frames arrived outside the cut");
            let mut notice = Notice::new(NotifyEvent::OutsideCut, "", &due.rule, &due.path);
            notice.reason = Some(format!(
                "{} frame{} of `{}` outside cut `{}` rev {} ({}-{})",
                due.count,
                if due.count == 1 { "" } else { "s" },
                k.shot,
                k.cut,
                k.revision,
                due.first,
                due.last
            ));
            notice.cut = Some(CutAbout {
                cut: k.cut.clone(),
                revision: k.revision,
                shot: Some(k.shot.clone()),
                count: Some(due.count),
                first_frame: Some(due.first),
                last_frame: Some(due.last),
                shots: Vec::new(),
            });
            self.tell(notice, &targets);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(shot: &str, revision: i64) -> Key {
        Key {
            cut: "reel1".into(),
            revision,
            shot: shot.into(),
        }
    }

    #[test]
    fn a_burst_of_frames_is_one_notice_after_the_quiet_time() {
        let mut watch = OutsideWatch::default();
        let t0 = Instant::now();
        let path = Path::new("/s/sh010.0900.exr");
        // 500 frames, 10 ms apart, one of them twice.
        for i in 0..500 {
            let now = t0 + Duration::from_millis(10 * i);
            watch.saw(key("sh010", 1), 900 - i as i64, "comp", path, now);
        }
        watch.saw(
            key("sh010", 1),
            900,
            "comp",
            path,
            t0 + Duration::from_secs(5),
        );
        let last = t0 + Duration::from_secs(5);
        assert_eq!(watch.next_deadline(), Some(last + QUIET));
        assert!(
            watch
                .due(last + QUIET - Duration::from_millis(1))
                .is_empty()
        );
        let told = watch.due(last + QUIET);
        assert_eq!(told.len(), 1);
        assert_eq!(
            (told[0].count, told[0].first, told[0].last),
            (500, 401, 900)
        );
        assert_eq!(told[0].path, path);
        // More frames of the same shot and revision: never told again.
        watch.saw(key("sh010", 1), 300, "comp", path, last + QUIET * 2);
        assert_eq!(watch.next_deadline(), None);
        assert!(watch.due(last + LONGEST * 2).is_empty());
        // Another shot, or a new revision, is news.
        watch.saw(key("sh020", 1), 10, "comp", path, last + QUIET * 2);
        watch.saw(key("sh010", 2), 10, "comp", path, last + QUIET * 2);
        let told = watch.due(last + QUIET * 3);
        let keys: Vec<_> = told
            .iter()
            .map(|o| (o.key.shot.as_str(), o.key.revision))
            .collect();
        assert_eq!(keys, [("sh010", 2), ("sh020", 1)]);
    }

    #[test]
    fn frames_that_never_stop_are_told_after_the_longest_wait() {
        let mut watch = OutsideWatch::default();
        let t0 = Instant::now();
        let mut now = t0;
        let mut told = Vec::new();
        while now < t0 + LONGEST * 2 {
            watch.saw(key("sh010", 1), 1, "comp", Path::new("/x"), now);
            told.extend(watch.due(now));
            now += Duration::from_millis(500);
        }
        assert_eq!(told.len(), 1);
        assert!(t0 + LONGEST <= now);
    }

    #[test]
    fn a_shot_told_for_an_old_revision_is_forgotten_when_the_index_moves_on() {
        let mut watch = OutsideWatch::default();
        let t0 = Instant::now();
        watch.saw(key("sh010", 1), 1, "comp", Path::new("/x"), t0);
        assert_eq!(watch.due(t0 + QUIET).len(), 1);
        watch.forget_old(&CutIndex::default());
        assert!(watch.told.is_empty());
    }
}
