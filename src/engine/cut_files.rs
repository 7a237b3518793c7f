//! Cut files dropped into the tree (`cuts.files`): each one that arrives complete is imported
//! as the next revision of the cut its stem names, unless its content is already stored (a
//! file saved again, or seen again at a restart). The import is
//! [`crate::cutfile`]'s, as `cut import`'s; then the cuts are read again at once, so frames
//! route by the new ranges and extended shots are told without waiting for the store poll.
//!
//! A file that is no cut is logged with its line (or clip) and told to `failed` targets of the
//! file's `notify:`; the watcher goes on. The file is routed to rules like any other: a rule
//! runs on it only when its own `match:` names it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use globset::GlobMatcher;

use crate::cutfile::{Dedup, Imported, Request};
use crate::exec::notifier::{CutAbout, Notice};
use crate::os::lease::{self, Writers};
use crate::rules::{EventKind, NotifyEvent, NotifyTarget};
use crate::store::now_ms;

use super::Engine;

/// The compiled `cuts.files` glob, compiled again only when the rules' text changes.
#[derive(Debug, Default)]
pub struct CutFiles {
    glob: Option<(String, GlobMatcher)>,
    /// Whether the lack of a store was logged (once per run).
    warned: bool,
}

impl CutFiles {
    /// Whether `rel` (under a watch root) is a cut file by `files` (the rules' glob).
    fn matches(&mut self, files: Option<&str>, rel: &Path) -> bool {
        let Some(text) = files else {
            return false;
        };
        if self.glob.as_ref().is_none_or(|(t, _)| t != text) {
            // Checked when the rules loaded.
            let Ok(glob) = crate::rules::compile_glob(text) else {
                return false;
            };
            self.glob = Some((text.to_string(), glob.compile_matcher()));
        }
        self.glob.as_ref().is_some_and(|(_, m)| m.is_match(rel))
    }
}

impl Engine {
    /// Imports `rel` under watch root `root` when it is a cut file by `cuts.files`, with
    /// `dedup` deciding whether stored content makes it no news. Returns whether it was one.
    pub(super) fn take_cut_file(
        &mut self,
        root: usize,
        rel: &Path,
        kind: EventKind,
        dedup: Dedup,
    ) -> bool {
        let set = self.set.clone();
        let Some(settings) = set.file.cuts.as_ref() else {
            return false;
        };
        if kind == EventKind::Delete || !self.cut_files.matches(settings.files.as_deref(), rel) {
            return false;
        }
        let abs = set.file.watch[root].path.join(rel);
        // Still being written (a scan found it): its close arrives as an event of its own.
        if lease::writers(&abs) == Writers::Open {
            return true;
        }
        let Some(store) = self.node.store.as_deref_mut() else {
            if !std::mem::replace(&mut self.cut_files.warned, true) {
                tracing::warn!(path = %abs.display(), "a cut file arrived, but this watcher keeps no store (`--no-store`): cut files are not imported");
            }
            return true;
        };
        let Some(name) = crate::cutfile::name_of(rel) else {
            return true;
        };
        let bytes = match std::fs::read(&abs) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!(path = %abs.display(), error = %e, "cut file gone before it could be read");
                return true;
            }
        };
        let request = Request {
            file: &abs,
            source: &abs,
            bytes: &bytes,
            name: &name,
            fps: settings.fps,
            naming: &settings.naming,
            dedup,
        };
        match crate::cutfile::import(store, request) {
            Ok(Imported::Stored(revision)) => {
                tracing::info!(cut = %name, revision = revision.revision, shots = revision.present().count(), path = %abs.display(), "imported a cut file");
                self.refresh_cuts(Instant::now());
                self.tell_cut_changes();
            }
            Ok(Imported::Unchanged { revision }) => {
                tracing::info!(cut = %name, revision, path = %abs.display(), "cut file unchanged; no new revision");
            }
            Err(e) => {
                tracing::error!(cut = %name, path = %abs.display(), "cannot import a cut file: {e}");
                let mut notice = Notice::new(NotifyEvent::Failed, "", "cuts", &abs);
                notice.reason = Some(format!("cannot import a cut file: {e}"));
                notice.cut = Some(CutAbout {
                    cut: name,
                    ..CutAbout::default()
                });
                let targets = self.cut_targets(NotifyEvent::Failed, true);
                self.tell(notice, &targets);
            }
        }
        true
    }

    /// Tells the targets that want `extended` of each revision read since the last look that
    /// extends shots: one notice per revision, naming each shot, its new range and the frames
    /// its previous range did not keep.
    pub(super) fn tell_cut_changes(&mut self) {
        self.outside.forget_old(&self.cuts.index);
        let extended = std::mem::take(&mut self.cuts.extended);
        if extended.is_empty() {
            return;
        }
        let targets = self.cut_targets(NotifyEvent::Extended, false);
        for (revision, shots) in extended {
            let needs: Vec<String> = shots
                .iter()
                .map(|s| format!("{} {}", s.shot, s.frames))
                .collect();
            tracing::warn!(cut = %revision.name, revision = revision.revision, shots = %needs.join(", "), "the new cut revision needs frames past the shots' previous ranges");
            let mut notice =
                Notice::new(NotifyEvent::Extended, "", "", Path::new(&revision.source));
            notice.reason = Some(format!(
                "cut `{}` revision {} needs frames past the previous ranges: {}",
                revision.name,
                revision.revision,
                needs.join(", ")
            ));
            notice.cut = Some(CutAbout {
                cut: revision.name.clone(),
                revision: revision.revision,
                shots,
                ..CutAbout::default()
            });
            self.tell(notice, &targets);
        }
    }

    /// The targets of the file's `notify:` that want `event`, and (unless `file_only`) those
    /// of rules' own `notify:` too: an event of the cut belongs to no one rule.
    fn cut_targets(&self, event: NotifyEvent, file_only: bool) -> Vec<Arc<NotifyTarget>> {
        let file = &self.set.file;
        let own = file.rules.iter().filter_map(|r| r.notify.as_deref());
        let mut all: Vec<&NotifyTarget> = Vec::new();
        for target in file
            .notify
            .iter()
            .chain(own.filter(|_| !file_only).flatten())
        {
            if target.wants(event) && !all.contains(&target) {
                all.push(target);
            }
        }
        all.into_iter().map(|t| Arc::new(t.clone())).collect()
    }

    /// Sends a notice of the cut from this node, now (`attempt` 0: no job ran).
    pub(super) fn tell(&self, mut notice: Notice, targets: &[Arc<NotifyTarget>]) {
        notice.attempt = 0;
        notice.node = self.node.name.clone();
        notice.at_ms = now_ms();
        self.node.notifier.send(notice, targets);
    }
}
