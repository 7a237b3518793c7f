//! The file's `cuts:` block: how shots are named in editorial's cuts (a regex with a `shot`
//! capture), their handles and first frame, an EDL's rate and the glob cut files arrive by.
//! Read here with a refusal at each bad value; the cut model itself is `crate::edit`'s.

use crate::edit::ShotNaming;
use crate::media::timecode::Rate;
use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::syntax::compile_glob;
use crate::rules::yaml::NodeKind;

const CUTS_KEYS: &[&str] = &["shot", "handles", "head_in", "fps", "files"];
const HANDLE_KEYS: &[&str] = &["head", "tail"];

/// The shot pattern used when a rules file has no `cuts:` block: letters then digits at the
/// start of the clip name, ending it or followed by `_` (`sh010`, `sh010_comp_v3`).
pub const DEFAULT_SHOT_PATTERN: &str = r"^(?P<shot>[A-Za-z]+[0-9]+)(?:_|$)";

/// The largest handle or `head_in` the block takes: frame numbers stay far inside `i64`.
const MAX_FRAMES: i64 = crate::edit::cut::MAX_FRAME;

/// The `cuts:` block of a rules file.
#[derive(Debug, Clone)]
pub struct CutSettings {
    /// The shot pattern, handles and `head_in`.
    pub naming: ShotNaming,
    /// The rate EDLs count in (they carry none); `.otio` files carry their own.
    pub fps: Option<Rate>,
    /// A glob (relative to a watch root) of cut files dropped into the tree.
    pub files: Option<String>,
}

impl Default for CutSettings {
    fn default() -> Self {
        CutSettings {
            naming: ShotNaming::new(DEFAULT_SHOT_PATTERN).expect("the default pattern compiles"),
            fps: None,
            files: None,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::rules::diag::{Diagnostics, Severity};
    use crate::rules::{RuleFile, parse};

    fn load(body: &str) -> Result<RuleFile, Diagnostics> {
        parse(
            Path::new("rules.yaml"),
            &format!("version: 1\nwatch: [\"/\"]\nrules: []\n{body}"),
            Path::new("/"),
        )
    }

    /// Every error of `body` as `line:col message`.
    fn errors(body: &str) -> Vec<String> {
        load(body)
            .expect_err("expected errors")
            .items
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| format!("{}:{} {}", d.span.line, d.span.column, d.message))
            .collect()
    }

    #[test]
    fn a_full_block_loads() {
        let file = load(
            "cuts:\n  shot: \"^(?P<shot>sh[0-9]{3})_\"\n  handles: {head: 4, tail: 12}\n  head_in: 101\n  fps: 23.976\n  files: \"editorial/*.edl\"\n",
        )
        .expect("loads");
        let cuts = file.cuts.expect("cuts");
        let n = &cuts.naming;
        assert_eq!(n.pattern(), "^(?P<shot>sh[0-9]{3})_");
        assert_eq!((n.head_handles, n.tail_handles, n.head_in), (4, 12, 101));
        assert_eq!(cuts.fps.map(|r| r.to_string()).as_deref(), Some("23.976"));
        assert_eq!(cuts.files.as_deref(), Some("editorial/*.edl"));
    }

    #[test]
    fn defaults_are_eight_frame_handles_from_1001() {
        let file = load("cuts: {shot: \"(?P<shot>sh[0-9]+)\", handles: 10}\n").expect("loads");
        let cuts = file.cuts.expect("cuts");
        let n = &cuts.naming;
        assert_eq!((n.head_handles, n.tail_handles, n.head_in), (10, 10, 1001));
        assert!(cuts.fps.is_none() && cuts.files.is_none());
        let file = load("cuts: {shot: \"(?P<shot>sh[0-9]+)\"}\n").expect("loads");
        let n = file.cuts.expect("cuts").naming;
        assert_eq!((n.head_handles, n.tail_handles, n.head_in), (8, 8, 1001));
        assert!(load("").expect("loads").cuts.is_none());
    }

    #[test]
    fn the_default_pattern_names_letters_then_digits() {
        let naming = super::CutSettings::default().naming;
        let re = regex::Regex::new(naming.pattern()).unwrap();
        let shot = |s: &str| re.captures(s).map(|c| c["shot"].to_string());
        assert_eq!(shot("sh010_comp_v3").as_deref(), Some("sh010"));
        assert_eq!(shot("sh010").as_deref(), Some("sh010"));
        assert_eq!(shot("A001C003"), None);
        assert_eq!(shot("temp_title"), None);
    }

    #[test]
    fn bad_blocks_are_refused_at_their_values() {
        let cases: &[(&str, &[&str])] = &[
            (
                "cuts:\n  shot: \"sh[0-9]+\"\n",
                &["5:9 shot pattern `sh[0-9]+` has no capture named `shot`"],
            ),
            (
                "cuts:\n  shot: \"(?P<shot>sh[0-9\"\n",
                &["5:9 invalid regex: unclosed character class"],
            ),
            (
                "cuts:\n  handles: 8\n",
                &["5:3 `cuts:` needs `shot:`, a regex naming the shot"],
            ),
            (
                "cuts:\n  shot: \"(?P<shot>x)\"\n  handels: 8\n",
                &["6:3 unknown key `handels`"],
            ),
            (
                "cuts:\n  shot: \"(?P<shot>x)\"\n  handles: -1\n",
                &["6:12 `handles` -1 is out of range"],
            ),
            (
                "cuts:\n  shot: \"(?P<shot>x)\"\n  handles: {head: 4, tale: 2}\n",
                &["6:22 unknown key `tale`"],
            ),
            (
                "cuts:\n  shot: \"(?P<shot>x)\"\n  handles: {head: many}\n",
                &["6:19 `head`: invalid type: string \"many\", expected a whole number"],
            ),
            (
                "cuts:\n  shot: \"(?P<shot>x)\"\n  head_in: -5\n",
                &["6:12 `head_in` -5 is out of range"],
            ),
            (
                "cuts:\n  shot: \"(?P<shot>x)\"\n  fps: 23.5\n",
                &[
                    "6:8 unknown frame rate `23.5`; use 23.976, 24, 25, 29.97, 30, 47.952, 48, 50, 59.94, 60, or a fraction like 30000/1001",
                ],
            ),
            (
                "cuts:\n  shot: \"(?P<shot>x)\"\n  files: \"edit/[a.edl\"\n",
                &["6:10 invalid glob `edit/[a.edl`: unclosed character class; missing ']'"],
            ),
            ("cuts: sh010\n", &["4:7 `cuts` takes a mapping"]),
        ];
        for (body, want) in cases {
            let got = errors(body);
            assert_eq!(got.len(), want.len(), "{body}: {got:#?}");
            for (g, w) in got.iter().zip(*want) {
                assert!(g.starts_with(w), "{body}:\n got {g}\nwant {w}");
            }
        }
    }

    #[test]
    fn a_pattern_error_renders_at_the_key_with_its_context() {
        let report = load("cuts:\n  shot: \"sh[0-9]+\"\n").expect_err("refused");
        let text = report.to_string();
        assert!(text.contains("rules.yaml:5:9"), "{text}");
        assert!(text.contains("in cuts.shot"), "{text}");
    }
}
