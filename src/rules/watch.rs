//! The `watch:` section: which folders are watched, under which name, and by which source.
//!
//! A root's `name:` (default: the folder's name) is what the job store records paths relative
//! to, so it must be unique and usable as one path component; `source:` is how changes are
//! noticed (`auto`, the default, picks from the root's file system when watching starts);
//! `poll:` tunes polling, so it is refused on a root forced to `inotify`, where it would
//! silently do nothing.

use std::path::Path;
use std::time::Duration;

use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::model::{PollSettings, SourceKind, WatchRoot};
use crate::rules::path::normalize;
use crate::rules::yaml::{Node, NodeKind};

const WATCH_KEYS: &[&str] = &["path", "name", "recursive", "source", "poll"];
const POLL_KEYS: &[&str] = &["hot", "cold", "quiet"];

/// The shortest poll interval or quiet time accepted: below it a poller only burns CPU.
const MIN_POLL: Duration = Duration::from_millis(50);
/// The longest `poll:` interval: a day. Longer would be no watching at all, and far longer
/// would overflow the clock arithmetic of the schedule.
const MAX_POLL: Duration = Duration::from_secs(86_400);

impl Loader<'_> {
    /// Every watch root, each checked; an empty list only when something was reported.
    pub(super) fn watch_roots(&mut self, top: &MapReader<'_>, base: &Path) -> Vec<WatchRoot> {
        let Some(node) = top.node.get("watch") else {
            self.error(
                Diagnostic::new("missing `watch:`, the folders to watch", top.node.span)
                    .hint("add `watch: [{path: shots}]`"),
            );
            return Vec::new();
        };
        let mut roots = Vec::new();
        let mut names = std::collections::HashSet::new();
        for item in node.items() {
            let Some((raw_path, name, recursive, source, poll)) = self.watch_item(item) else {
                continue;
            };
            if raw_path.is_empty() {
                self.error(Diagnostic::new("empty watch path", item.span));
                continue;
            }
            let path = normalize(&base.join(&raw_path));
            let name = name.unwrap_or_else(|| {
                path.file_name()
                    .map_or_else(|| "root".to_string(), |n| n.to_string_lossy().into_owned())
            });
            let span = item.get("name").map_or(item.span, |n| n.span);
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
                self.error(
                    Diagnostic::new(format!("watch root name `{name}` must be non-empty, without `/` or control characters"), span)
                        .context("in watch"),
                );
            } else if !names.insert(name.clone()) {
                self.error(
                    Diagnostic::new(format!("two watch roots are named `{name}`"), span)
                        .context("in watch")
                        .hint("give each root a unique `name:`; the store records paths relative to it"),
                );
            }
            let path_span = item.get("path").map_or(item.span, |n| n.span);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => self.warn(
                    Diagnostic::new(format!("watch root `{}` is not a folder", path.display()), path_span)
                        .context("in watch")
                        .hint("a watch root is a folder; files arriving in it are routed"),
                ),
                Err(e) => self.warn(
                    Diagnostic::new(
                        match e.kind() {
                            std::io::ErrorKind::NotFound => format!("watch root `{}` does not exist", path.display()),
                            _ => format!("watch root `{}` cannot be looked at: {e}", path.display()),
                        },
                        path_span,
                    )
                        .context("in watch")
                        .hint("the daemon waits for it and watches it once it appears; create or mount it, or fix the path"),
                ),
            }
            roots.push(WatchRoot {
                name,
                path,
                recursive,
                source,
                poll,
            });
        }
        if roots.is_empty() && self.errors.is_empty() {
            self.error(Diagnostic::new("`watch` lists no folder", node.span));
        }
        roots
    }

    /// One item of `watch:`: a bare path, or a mapping of [`WATCH_KEYS`]; `None` when it is
    /// unusable (the reason is reported).
    #[allow(clippy::type_complexity)]
    fn watch_item(
        &mut self,
        item: &Node,
    ) -> Option<(String, Option<String>, bool, SourceKind, PollSettings)> {
        match &item.kind {
            NodeKind::Scalar { text, .. } => {
                return Some((
                    text.clone(),
                    None,
                    true,
                    SourceKind::default(),
                    PollSettings::default(),
                ));
            }
            NodeKind::Map(_) => {}
            _ => {
                self.error(
                    Diagnostic::new("a watch root is a path or a mapping", item.span)
                        .context("in watch")
                        .hint("e.g. `- path: shots` or `- {path: /mnt/show, source: poll}`"),
                );
                return None;
            }
        }
        let map = MapReader {
            node: item,
            place: "watch".to_string(),
            rule: None,
        };
        let errors_before = self.errors.len();
        let _ = self.unknown_keys(&map, WATCH_KEYS);
        let Some(path) = self.field::<String>(&map, "path") else {
            if item.get("path").is_none() {
                self.error(
                    Diagnostic::new("missing `path`", item.span)
                        .context("in watch")
                        .hint("e.g. `- path: shots`"),
                );
            }
            return None;
        };
        let name = self.field::<String>(&map, "name");
        let recursive = self.field::<bool>(&map, "recursive").unwrap_or(true);
        let source = self.field::<SourceKind>(&map, "source").unwrap_or_default();
        let poll = self.poll_settings(&map, source);
        (self.errors.len() == errors_before).then_some((path, name, recursive, source, poll))
    }

    /// `poll:` of a watch root, checked: durations, `hot` no longer than `cold`, and never on a
    /// root forced to inotify.
    fn poll_settings(&mut self, root: &MapReader<'_>, source: SourceKind) -> PollSettings {
        let mut settings = PollSettings::default();
        let Some(map) = self.submap(root, "poll", "{hot: 2s, cold: 30s, quiet: 10s}") else {
            return settings;
        };
        if source == SourceKind::Inotify {
            self.error(
                Diagnostic::new(
                    "`poll:` settings on a root whose `source` is `inotify` would do nothing",
                    root.span_of("poll"),
                )
                .context("in watch")
                .hint("set `source: poll` (or leave `source` out: `auto` polls network file systems), or remove `poll:`"),
            );
        }
        let _ = self.unknown_keys(&map, POLL_KEYS);
        for (key, slot) in [
            ("hot", &mut settings.hot),
            ("cold", &mut settings.cold),
            ("quiet", &mut settings.quiet),
        ] {
            let Some(value) = self.duration(&map, key) else {
                continue;
            };
            if !(MIN_POLL..=MAX_POLL).contains(&value) {
                self.error(
                    Diagnostic::new(
                        format!("`{key}` must be between 50ms and 24h"),
                        map.span_of(key),
                    )
                    .context(map.at(key)),
                );
                continue;
            }
            *slot = value;
        }
        if settings.hot > settings.cold {
            self.error(
                Diagnostic::new(
                    format!(
                        "`hot` ({}) is longer than `cold` ({}): recently changed folders would be looked at less often than quiet ones",
                        humantime::format_duration(settings.hot),
                        humantime::format_duration(settings.cold)
                    ),
                    map.span_of("hot"),
                )
                .context(map.at("hot")),
            );
        }
        settings
    }
}
