//! How `cut import`, `cut show` and `cut ranges` print: tables, and text from the cut file
//! shown safely on a terminal.

use std::fmt::Write as _;

use crate::app::human::local_time_ms;
use crate::app::table::{self, Column};
use crate::store::cuts::{CutRanges, CutRevision};
use crate::store::now_ms;

const fn column(name: &'static str, right: bool, shrinks: bool) -> Column {
    Column {
        name,
        right,
        shrinks,
    }
}

const RANGE_COLUMNS: [Column; 4] = [
    column("SHOT", false, true),
    column("RENDER", false, false),
    column("CUT", false, false),
    column("FRAMES", true, false),
];

const SHOT_COLUMNS: [Column; 12] = [
    column("SHOT", false, true),
    column("CHANGE", false, false),
    column("HEAD_IN", true, false),
    column("CUT_IN", true, false),
    column("CUT_OUT", true, false),
    column("TAIL_OUT", true, false),
    column("EVENT", true, false),
    column("CLIP", false, true),
    column("RECORD IN", false, false),
    column("RECORD OUT", false, false),
    column("SHOWS", false, false),
    column("SPEED", true, false),
];

const UNMATCHED_COLUMNS: [Column; 6] = [
    column("EVENT", true, false),
    column("CLIP", false, true),
    column("REEL", false, true),
    column("RECORD IN", false, false),
    column("RECORD OUT", false, false),
    column("WHERE", false, true),
];

/// Text from a cut file shown safely on a terminal: control characters (an escape sequence in a
/// clip name) as escapes; everything else, `<script>`, quotes and `$(x)` included, as written.
pub(crate) fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn speed(speed: f64) -> String {
    if speed == 0.0 {
        "freeze".into()
    } else {
        format!("{speed:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + "x"
    }
}

/// A revision as `cut import` and `cut show` print it: a heading, one line per item (the
/// shot's frames on its first), then the items that name no shot.
pub(super) fn render_revision(r: &CutRevision) -> String {
    let mut out = String::new();
    let present = r.present().count();
    let _ = writeln!(
        out,
        "cut `{}` revision {}  {} fps  {} shot{}  imported {}",
        shown(&r.name),
        r.revision,
        r.fps,
        present,
        if present == 1 { "" } else { "s" },
        local_time_ms(r.imported_at, now_ms())
    );
    let _ = writeln!(out, "from {} ({})", shown(&r.source), r.hash);
    let mut rows = Vec::new();
    for s in &r.shots {
        let frames = [
            shown(&s.shot),
            s.change.as_str().to_string(),
            s.head_in.to_string(),
            s.cut_in.to_string(),
            s.cut_out.to_string(),
            s.tail_out.to_string(),
        ];
        if s.items.is_empty() {
            let mut row = frames.to_vec();
            row.extend(std::iter::repeat_n(String::new(), 6));
            rows.push(row);
        }
        for (n, i) in s.items.iter().enumerate() {
            let mut row = if n == 0 {
                frames.to_vec()
            } else {
                vec![String::new(); 6]
            };
            row.extend([
                i.event.to_string(),
                shown(i.clip.as_deref().or(i.reel.as_deref()).unwrap_or("")),
                i.record_in.clone(),
                i.record_out.clone(),
                format!("{}-{}", i.first, i.last),
                speed(i.speed),
            ]);
            rows.push(row);
        }
    }
    out.push_str(&table::render(&SHOT_COLUMNS, &rows, table::width()));
    if !r.unmatched.is_empty() {
        let _ = writeln!(
            out,
            "\n{} {} no shot (check the rules' `cuts.shot` pattern):",
            r.unmatched.len(),
            if r.unmatched.len() == 1 {
                "item names"
            } else {
                "items name"
            }
        );
        let rows: Vec<Vec<String>> = r
            .unmatched
            .iter()
            .map(|u| {
                vec![
                    u.event.to_string(),
                    shown(u.clip.as_deref().unwrap_or("")),
                    shown(u.reel.as_deref().unwrap_or("")),
                    u.record_in.clone(),
                    u.record_out.clone(),
                    shown(&u.origin),
                ]
            })
            .collect();
        out.push_str(&table::render(&UNMATCHED_COLUMNS, &rows, table::width()));
    }
    out
}

/// The ranges as `cut ranges` prints them.
pub(super) fn render_ranges(ranges: &CutRanges) -> String {
    let rows: Vec<Vec<String>> = ranges
        .shots
        .iter()
        .map(|s| {
            vec![
                shown(&s.shot),
                s.frames.clone(),
                format!("{}-{}", s.cut_in, s.cut_out),
                (s.tail_out - s.head_in + 1).to_string(),
            ]
        })
        .collect();
    let mut out = format!(
        "cut `{}` revision {}: frames to render per shot\n",
        shown(&ranges.cut),
        ranges.revision
    );
    out.push_str(&table::render(&RANGE_COLUMNS, &rows, table::width()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_escapes_control_characters_only() {
        assert_eq!(shown("<script>'$(x)\""), "<script>'$(x)\"");
        assert_eq!(shown("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(speed(2.0), "2x");
        assert_eq!(speed(0.5), "0.5x");
        assert_eq!(speed(0.0), "freeze");
        assert_eq!(speed(-1.0), "-1x");
    }
}
