//! Reading the `cuts:` block (see [`CutSettings`]): the shot pattern, handles, `head_in`, an
//! EDL's rate and the glob of cut files, each refused at its value when bad.

use crate::edit::ShotNaming;
use crate::media::timecode::Rate;
use crate::rules::cuts::CutSettings;
use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::syntax::compile_glob;
use crate::rules::yaml::NodeKind;

const CUTS_KEYS: &[&str] = &["shot", "handles", "head_in", "fps", "files"];
const HANDLE_KEYS: &[&str] = &["head", "tail"];

/// The largest handle or `head_in` the block takes: frame numbers stay far inside `i64`.
const MAX_FRAMES: i64 = crate::edit::cut::MAX_FRAME;

impl Loader<'_> {
    /// The file's `cuts:` block; `None` when absent or reported.
    pub(super) fn cuts_block(&mut self, top: &MapReader<'_>) -> Option<CutSettings> {
        let map = self.submap(
            top,
            "cuts",
            "{shot: \"^(?P<shot>sh[0-9]{3})_\", handles: 8}",
        )?;
        let _ = self.unknown_keys(&map, CUTS_KEYS);
        let errors = self.errors.len();
        let naming = self.shot_pattern(&map);
        let (head, tail) = self.handles(&map);
        let head_in = match self.field::<i64>(&map, "head_in") {
            Some(n) if !(0..=MAX_FRAMES).contains(&n) => {
                self.error(
                    Diagnostic::new(
                        format!("`head_in` {n} is out of range"),
                        map.span_of("head_in"),
                    )
                    .context(map.at("head_in"))
                    .hint(format!(
                        "give a frame number from 0 to {MAX_FRAMES}, e.g. `1001`"
                    )),
                );
                None
            }
            other => other,
        }
        .unwrap_or(ShotNaming::DEFAULT_HEAD_IN);
        let fps = self.field::<String>(&map, "fps").and_then(|text| {
            Rate::parse(&text)
                .map_err(|e| {
                    self.error(Diagnostic::new(e, map.span_of("fps")).context(map.at("fps")));
                })
                .ok()
        });
        let files =
            self.field::<String>(&map, "files")
                .and_then(|text| match compile_glob(&text) {
                    Ok(_) => Some(text),
                    Err(e) => {
                        self.error(
                            Diagnostic::new(
                                format!("invalid glob `{text}`: {}", e.kind()),
                                map.span_of("files"),
                            )
                            .context(map.at("files"))
                            .hint("e.g. `files: \"editorial/**/*.edl\"`"),
                        );
                        None
                    }
                });
        if self.errors.len() > errors {
            return None;
        }
        Some(CutSettings {
            naming: naming?.with_handles(head, tail).with_head_in(head_in),
            fps,
            files,
        })
    }

    /// `shot:`, required: a regex with a capture named `shot`.
    fn shot_pattern(&mut self, map: &MapReader<'_>) -> Option<ShotNaming> {
        let Some(node) = map.node.get("shot") else {
            self.error(
                Diagnostic::new("`cuts:` needs `shot:`, a regex naming the shot", map.node.span)
                    .context(map.at(""))
                    .hint("e.g. `shot: \"^(?P<shot>sh[0-9]{3})_\"`: it is tried on the clip name, then each locator, then the reel"),
            );
            return None;
        };
        let text = self.field::<String>(map, "shot")?;
        match ShotNaming::new(&text) {
            Ok(naming) => Some(naming),
            Err(crate::edit::EditError::Pattern { source, .. }) => {
                self.error(
                    Diagnostic::new(
                        format!(
                            "invalid regex: {}",
                            crate::rules::syntax::regex_error_summary(&source)
                        ),
                        node.span,
                    )
                    .context(map.at("shot")),
                );
                None
            }
            Err(_) => {
                self.error(
                    Diagnostic::new(
                        format!("shot pattern `{text}` has no capture named `shot`"),
                        node.span,
                    )
                    .context(map.at("shot"))
                    .hint("name the part that is the shot, e.g. `^(?P<shot>sh[0-9]{3})_`"),
                );
                None
            }
        }
    }

    /// `handles:`, one number for both ends or `{head, tail}`; 8 each when absent.
    fn handles(&mut self, map: &MapReader<'_>) -> (i64, i64) {
        let default = ShotNaming::DEFAULT_HANDLES;
        let Some(node) = map.node.get("handles") else {
            return (default, default);
        };
        if matches!(node.kind, NodeKind::Map(_)) {
            let Some(sub) = self.submap(map, "handles", "{head: 8, tail: 12}") else {
                return (default, default);
            };
            let _ = self.unknown_keys(&sub, HANDLE_KEYS);
            let head = self.handle_count(&sub, "head").unwrap_or(default);
            let tail = self.handle_count(&sub, "tail").unwrap_or(default);
            return (head, tail);
        }
        let both = self.handle_count(map, "handles").unwrap_or(default);
        (both, both)
    }

    /// One handle count: a whole number of frames, 0 or more.
    fn handle_count(&mut self, map: &MapReader<'_>, key: &str) -> Option<i64> {
        match self.field::<i64>(map, key)? {
            n if (0..=MAX_FRAMES).contains(&n) => Some(n),
            n => {
                self.error(
                    Diagnostic::new(format!("`{key}` {n} is out of range"), map.span_of(key))
                        .context(map.at(key))
                        .hint("handles are frames kept beside the cut: 0 or more, e.g. `8`"),
                );
                None
            }
        }
    }
}
