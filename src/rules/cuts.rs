//! The file's `cuts:` block: how shots are named in editorial's cuts (a regex with a `shot`
//! capture), their handles and first frame, an EDL's rate and the glob cut files arrive by.
//! Read by `cuts_keys` with a refusal at each bad value; the cut model itself is `crate::edit`'s.

use crate::edit::ShotNaming;
use crate::media::timecode::Rate;

/// The shot pattern used when a rules file has no `cuts:` block: letters then digits at the
/// start of the clip name, ending it or followed by `_` (`sh010`, `sh010_comp_v3`).
pub const DEFAULT_SHOT_PATTERN: &str = r"^(?P<shot>[A-Za-z]+[0-9]+)(?:_|$)";

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
