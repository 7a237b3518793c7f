//! The `watch:` section: which folders are watched, under which name, and by which source.
//!
//! A root's `name:` (default: the folder's name) is what the job store records paths relative
//! to, so it must be unique and usable as one path component; `source:` is how changes are
//! noticed (only `inotify` so far).

use std::path::Path;

use serde::Deserialize;

use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::model::{SourceKind, WatchRoot};
use crate::rules::path::normalize;
use crate::rules::yaml::{self, NodeKind};

impl Loader<'_> {
    /// Every watch root, each checked; an empty list only when something was reported.
    pub(super) fn watch_roots(&mut self, top: &MapReader<'_>, base: &Path) -> Vec<WatchRoot> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawWatch {
            path: String,
            #[serde(default)]
            name: Option<String>,
            #[serde(default = "default_true")]
            recursive: bool,
            #[serde(default)]
            source: SourceKind,
        }
        fn default_true() -> bool {
            true
        }
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
            let raw = match &item.kind {
                NodeKind::Scalar { text, .. } => Ok(RawWatch {
                    path: text.clone(),
                    name: None,
                    recursive: true,
                    source: SourceKind::default(),
                }),
                _ => yaml::from_node::<RawWatch>(item),
            };
            match raw {
                Ok(raw) if raw.path.is_empty() => {
                    self.error(Diagnostic::new("empty watch path", item.span))
                }
                Ok(raw) => {
                    let path = normalize(&base.join(&raw.path));
                    let name = raw.name.clone().unwrap_or_else(|| {
                        path.file_name().map_or_else(
                            || "root".to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        )
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
                    roots.push(WatchRoot {
                        name,
                        path,
                        recursive: raw.recursive,
                        source: raw.source,
                    });
                }
                Err(e) => self.error(
                    Diagnostic::new(e.message, e.span.unwrap_or(item.span)).context("in watch"),
                ),
            }
        }
        if roots.is_empty() && self.errors.is_empty() {
            self.error(Diagnostic::new("`watch` lists no folder", node.span));
        }
        roots
    }
}
