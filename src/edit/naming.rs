//! Which shot a cut item shows: a regex with a capture named `shot`, tried on the clip name,
//! then each locator, then the reel, as a future `cuts:` block in the rules will configure it;
//! with the handles and first frame the shot's frame numbers start from.

use regex::Regex;

use crate::edit::{CutItem, EditError};

/// How shots are named in a cut and how their frames are numbered.
#[derive(Debug, Clone)]
pub struct ShotNaming {
    pattern: Regex,
    /// Frames kept before the cut: `cut_in` = `head_in` + `head_handles`.
    pub head_handles: i64,
    /// Frames kept after the cut: `tail_out` = `cut_out` + `tail_handles`.
    pub tail_handles: i64,
    /// The first frame of a new shot, handles included.
    pub head_in: i64,
}

impl ShotNaming {
    /// Handles of a new naming, head and tail.
    pub const DEFAULT_HANDLES: i64 = 8;
    /// A new shot's first frame.
    pub const DEFAULT_HEAD_IN: i64 = 1001;

    /// A naming from a pattern with a `(?P<shot>...)` capture, with 8-frame handles from 1001.
    ///
    /// # Errors
    /// The pattern does not compile, or has no capture named `shot`.
    pub fn new(pattern: &str) -> Result<ShotNaming, EditError> {
        let regex = Regex::new(pattern).map_err(|source| EditError::Pattern {
            pattern: pattern.to_string(),
            source,
        })?;
        if !regex.capture_names().any(|n| n == Some("shot")) {
            return Err(EditError::NoShotCapture {
                pattern: pattern.to_string(),
            });
        }
        Ok(ShotNaming {
            pattern: regex,
            head_handles: Self::DEFAULT_HANDLES,
            tail_handles: Self::DEFAULT_HANDLES,
            head_in: Self::DEFAULT_HEAD_IN,
        })
    }

    /// The same naming with other handles.
    #[must_use]
    pub fn with_handles(mut self, head: i64, tail: i64) -> ShotNaming {
        self.head_handles = head;
        self.tail_handles = tail;
        self
    }

    /// The same naming with another first frame for new shots.
    #[must_use]
    pub fn with_head_in(mut self, head_in: i64) -> ShotNaming {
        self.head_in = head_in;
        self
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The shot `text` names (a clip or file name), if the pattern matches it.
    pub fn shot_in(&self, text: &str) -> Option<String> {
        Some(
            self.pattern
                .captures(text)?
                .name("shot")?
                .as_str()
                .to_string(),
        )
    }

    /// The shot `item` shows: the first of clip name, locators, reel that the pattern matches.
    pub fn shot_of(&self, item: &CutItem) -> Option<String> {
        item.name
            .iter()
            .chain(&item.locators)
            .chain(&item.reel)
            .find_map(|text| self.pattern.captures(text)?.name("shot"))
            .map(|m| m.as_str().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::{Origin, Track, Transition};

    fn item(name: Option<&str>, locators: &[&str], reel: Option<&str>) -> CutItem {
        CutItem {
            event: 1,
            name: name.map(str::to_string),
            reel: reel.map(str::to_string),
            locators: locators.iter().map(|s| s.to_string()).collect(),
            track: Track::Video("V".into()),
            transition: Transition::Cut,
            source_in: 0,
            source_out: 1,
            record_in: 0,
            record_out: 1,
            speed: 1.0,
            origin: Origin::Line(1),
        }
    }

    #[test]
    fn clip_name_then_locator_then_reel() {
        let naming = ShotNaming::new(r"(?P<shot>sh[0-9]{3})").unwrap();
        let cases = [
            (
                item(Some("sh010_comp_v3"), &["RED sh020"], Some("sh030")),
                Some("sh010"),
            ),
            (
                item(Some("A001C003"), &["RED sh020"], Some("sh030")),
                Some("sh020"),
            ),
            (
                item(Some("A001C003"), &["YELLOW note"], Some("sh030")),
                Some("sh030"),
            ),
            (item(None, &[], Some("A001")), None),
        ];
        for (item, want) in cases {
            assert_eq!(naming.shot_of(&item).as_deref(), want, "{item:?}");
        }
    }

    #[test]
    fn a_pattern_without_a_shot_capture_is_refused() {
        let err = ShotNaming::new(r"sh[0-9]+").unwrap_err();
        assert_eq!(
            err.to_string(),
            "shot pattern `sh[0-9]+` has no capture named `shot`; write e.g. `(?P<shot>sh[0-9]+)`"
        );
        assert!(matches!(
            ShotNaming::new("(?P<shot>sh[0-9"),
            Err(EditError::Pattern { .. })
        ));
        let naming = ShotNaming::new("(?P<shot>x)")
            .unwrap()
            .with_handles(4, 12)
            .with_head_in(101);
        assert_eq!(
            (naming.head_handles, naming.tail_handles, naming.head_in),
            (4, 12, 101)
        );
    }
}
