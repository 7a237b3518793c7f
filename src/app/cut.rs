//! `shotrouter cut import|show|ranges`: reading a cut file (the I/O `crate::edit` leaves to its
//! callers, and `otioconvert` for AAF and FCP XML), computing its shot ranges and changes
//! against the stored revisions, storing it, and printing revisions and render ranges.
//!
//! A revision is computed from every revision before it, so frame numbers stay where earlier
//! revisions put them; the store refuses it when another import got there first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::app::cli::CutPlace;
use crate::app::human::local_time_ms;
use crate::app::ops::{json, print, runtime};
use crate::app::table::{self, Column};
use crate::edit::{Change, Cut, EditError, ShotNaming, ShotRange, ShotRanges, cmx3600, diff, otio};
use crate::error::Error;
use crate::media::timecode::Rate;
use crate::rules::cuts::CutSettings;
use crate::store::cuts::{
    CutRanges, CutRevision, CutShot, CutShotItem, CutStore, ShotChange, UnmatchedItem,
};
use crate::store::{self, now_ms};

/// Why a cut file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    /// The file cannot be read.
    #[error("cannot read cut file `{}`: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a cut the readers understand; the reader's error names the line or clip.
    #[error("`{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the reader refused, and where.
        #[source]
        source: EditError,
    },
    /// An EDL with no rate to read it at.
    #[error(
        "`{}` is an EDL, which carries no frame rate; give `--fps` (e.g. `--fps 24`) or `fps:` in the rules' `cuts:` block",
        path.display()
    )]
    NoRate {
        /// The file.
        path: PathBuf,
    },
    /// An `.otio` file whose rate is none shotrouter knows, with no `--fps`.
    #[error(
        "`{}` counts at {rate} fps, which is no rate shotrouter knows; give `--fps` (e.g. `--fps 23.976`)",
        path.display()
    )]
    OddRate {
        /// The file.
        path: PathBuf,
        /// The rate the file gives.
        rate: f64,
    },
    /// AAF or FCP XML, and no `otioconvert` to turn it into `.otio`.
    #[error(
        "`{}` is {format}, which shotrouter reads through OpenTimelineIO's `otioconvert`, and `otioconvert` is not on PATH; install it (`pip install opentimelineio otio-aaf-adapter otio-fcp-adapter`) or export the cut as an EDL or .otio",
        path.display()
    )]
    NoConverter {
        /// The file.
        path: PathBuf,
        /// `AAF`, `FCP XML`.
        format: &'static str,
    },
    /// `otioconvert` ran and failed.
    #[error("`otioconvert` cannot convert `{}`: {reason}", path.display())]
    Convert {
        /// The file.
        path: PathBuf,
        /// Its last line of stderr, or how it ended.
        reason: String,
    },
    /// No cut name given and the store holds none or several.
    #[error("{0}")]
    Which(String),
}

/// What kind of cut file a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Edl,
    Otio,
    /// Read through `otioconvert`, named for messages.
    Converted(&'static str),
}

/// The format by extension, else by content: JSON is OTIO, anything else an EDL.
fn format_of(path: &Path, bytes: &[u8]) -> Format {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("edl") => Format::Edl,
        Some("otio") => Format::Otio,
        Some("aaf") => Format::Converted("AAF"),
        Some("xml" | "fcpxml") => Format::Converted("FCP XML"),
        _ if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => Format::Otio,
        _ => Format::Edl,
    }
}

/// The shot naming of the rules' `cuts:` block, or the defaults.
fn settings(place: &CutPlace) -> Result<CutSettings, Error> {
    match &place.rules {
        Some(path) => Ok(crate::rules::load(path)?.cuts.unwrap_or_default()),
        None => Ok(CutSettings::default()),
    }
}

fn open_store(place: &CutPlace) -> Result<Box<dyn CutStore + Send>, Error> {
    store::open_cuts(&place.state().location()?).map_err(Error::setup)
}

/// `shotrouter cut import FILE`.
///
/// # Errors
/// A file that cannot be read as a cut (exit 1, naming its line or clip), bad rules, no store.
pub fn import(
    file: &Path,
    name: Option<&str>,
    fps: Option<Rate>,
    as_json: bool,
    place: &CutPlace,
) -> Result<ExitCode, Error> {
    let settings = settings(place)?;
    let bytes = std::fs::read(file).map_err(|source| {
        Error::failed(CutError::Open {
            path: file.to_path_buf(),
            source,
        })
    })?;
    let (cut, rate) = read_cut(file, &bytes, fps.or(settings.fps)).map_err(Error::failed)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Config("give the cut a name with `--name`".into()))?,
    };
    let mut store = open_store(place)?;
    let earlier = store.cut_revisions(&name).map_err(runtime)?;
    let revision = revision_of(&name, &cut, &settings.naming, &earlier);
    let revision = CutRevision {
        imported_at: now_ms(),
        source: crate::rules::absolute(file).display().to_string(),
        hash: format!("xxh3:{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)),
        fps: rate.to_string(),
        ..revision
    };
    store.add_cut_revision(&revision).map_err(runtime)?;
    if as_json {
        return json(&revision);
    }
    print(&render_revision(&revision))
}

/// Reads `bytes` as the cut file `path` holds, at `fps` (required for an EDL; an .otio file
/// gives its own when not told).
fn read_cut(path: &Path, bytes: &[u8], fps: Option<Rate>) -> Result<(Cut, Rate), CutError> {
    let read = |source| CutError::Read {
        path: path.to_path_buf(),
        source,
    };
    // EDLs come from many editors; a stray Latin-1 byte in a clip name should not refuse
    // the whole list.
    let text = String::from_utf8_lossy(bytes);
    match format_of(path, bytes) {
        Format::Edl => {
            let rate = fps.ok_or_else(|| CutError::NoRate {
                path: path.to_path_buf(),
            })?;
            Ok((cmx3600::parse(&text, rate).map_err(read)?, rate))
        }
        Format::Otio => {
            let rate = match fps {
                Some(rate) => rate,
                None => otio_rate(path, &text)?,
            };
            Ok((otio::parse(&text, rate).map_err(read)?, rate))
        }
        Format::Converted(format) => {
            let converted = convert(path, format)?;
            let rate = match fps {
                Some(rate) => rate,
                None => otio_rate(path, &converted)?,
            };
            Ok((otio::parse(&converted, rate).map_err(read)?, rate))
        }
    }
}

/// The rate of an .otio file: that of its first time, mapped to the rate shotrouter knows it
/// as (23.976023976... is 24000/1001).
fn otio_rate(path: &Path, text: &str) -> Result<Rate, CutError> {
    let root: serde_json::Value = serde_json::from_str(text).map_err(|e| CutError::Read {
        path: path.to_path_buf(),
        source: EditError::Json(e),
    })?;
    let Some(rate) = first_rate(&root) else {
        // No times at all: an empty timeline; any rate reads it.
        return Ok(Rate::parse("24").expect("24 is a rate"));
    };
    let known = [
        "23.976", "24", "25", "29.97", "30", "47.952", "48", "50", "59.94", "60",
    ];
    known
        .iter()
        .map(|t| Rate::parse(t).expect("a known rate"))
        .find(|r| (r.fps() - rate).abs() < 0.001)
        .or_else(|| {
            (rate.fract() == 0.0 && (1.0..=1000.0).contains(&rate))
                .then(|| Rate::parse(&format!("{rate}")).ok())
                .flatten()
        })
        .ok_or(CutError::OddRate {
            path: path.to_path_buf(),
            rate,
        })
}

/// The `rate` of the first `RationalTime` in the document, depth first.
fn first_rate(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Object(map) => {
            let is_time = map
                .get("OTIO_SCHEMA")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.starts_with("RationalTime"));
            if is_time && let Some(rate) = map.get("rate").and_then(|r| r.as_f64()) {
                return Some(rate);
            }
            map.values().find_map(first_rate)
        }
        serde_json::Value::Array(items) => items.iter().find_map(first_rate),
        _ => None,
    }
}

/// AAF or FCP XML as .otio text, through `otioconvert` into a temp file.
fn convert(path: &Path, format: &'static str) -> Result<String, CutError> {
    let Some(program) = crate::os::program::find_program("otioconvert".as_ref()) else {
        return Err(CutError::NoConverter {
            path: path.to_path_buf(),
            format,
        });
    };
    let failed = |reason: String| CutError::Convert {
        path: path.to_path_buf(),
        reason,
    };
    // A name of this process's own: otioconvert writes the file, this reads then removes it.
    let out = std::env::temp_dir().join(format!(
        "shotrouter-cut-{}-{}.otio",
        std::process::id(),
        now_ms()
    ));
    let run = std::process::Command::new(program)
        .arg("-i")
        .arg(path)
        .arg("-o")
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !run.status.success() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(failed(
            last.map_or_else(|| run.status.to_string(), |l| l.trim().to_string()),
        ));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| failed(format!("no output: {e}")));
    let _ = std::fs::remove_file(&out);
    text
}

/// The shot ranges a stored revision holds, as `edit` computes the next one from.
fn stored_ranges(revision: &CutRevision) -> ShotRanges {
    ShotRanges {
        shots: revision
            .present()
            .map(|s| {
                let range = ShotRange {
                    head_in: s.head_in,
                    cut_in: s.cut_in,
                    cut_out: s.cut_out,
                    tail_out: s.tail_out,
                    source_in: s.source_in,
                    items: Vec::new(),
                };
                (s.shot.clone(), range)
            })
            .collect(),
        unmatched: Vec::new(),
    }
}

fn stored_change(change: Change) -> ShotChange {
    match change {
        Change::New => ShotChange::New,
        Change::Omitted => ShotChange::Omitted,
        Change::Reinstated => ShotChange::Reinstated,
        Change::CutChange => ShotChange::CutChange,
        Change::Extended => ShotChange::Extended,
        Change::NoChange => ShotChange::NoChange,
    }
}

/// The next revision of cut `name` after `earlier` (oldest first): shots, changes and items;
/// the caller fills in where it came from.
fn revision_of(name: &str, cut: &Cut, naming: &ShotNaming, earlier: &[CutRevision]) -> CutRevision {
    let history: Vec<ShotRanges> = earlier.iter().map(stored_ranges).collect();
    let ranges = ShotRanges::compute(cut, naming, &history);
    let changes = diff(&history, &ranges);
    let item = |index: usize, first: i64, last: i64| {
        let item = &cut.items[index];
        let (record_in, record_out) = cut.record_timecodes(item);
        CutShotItem {
            event: item.event,
            clip: item.name.clone(),
            reel: item.reel.clone(),
            record_in,
            record_out,
            first,
            last,
            speed: item.speed,
        }
    };
    let shots = changes
        .into_iter()
        .filter_map(|(shot, change)| match ranges.shots.get(&shot) {
            Some(r) => Some(CutShot {
                change: stored_change(change),
                head_in: r.head_in,
                cut_in: r.cut_in,
                cut_out: r.cut_out,
                tail_out: r.tail_out,
                source_in: r.source_in,
                items: r
                    .items
                    .iter()
                    .map(|i| item(i.item, i.first, i.last))
                    .collect(),
                shot,
            }),
            // Omitted: its frames as the previous revision left them.
            None => earlier
                .last()?
                .present()
                .find(|s| s.shot == shot)
                .map(|s| CutShot {
                    change: ShotChange::Omitted,
                    items: Vec::new(),
                    ..s.clone()
                }),
        })
        .collect();
    let unmatched = ranges
        .unmatched
        .iter()
        .map(|&index| {
            let item = &cut.items[index];
            let (record_in, record_out) = cut.record_timecodes(item);
            UnmatchedItem {
                event: item.event,
                clip: item.name.clone(),
                reel: item.reel.clone(),
                record_in,
                record_out,
                origin: item.origin.to_string(),
            }
        })
        .collect();
    CutRevision {
        name: name.to_string(),
        revision: earlier.last().map_or(1, |r| r.revision + 1),
        imported_at: 0,
        source: String::new(),
        hash: String::new(),
        fps: cut.rate.to_string(),
        shots,
        unmatched,
    }
}

/// The cut `name` names, or the only one in the store.
fn which(store: &dyn CutStore, name: Option<&str>) -> Result<String, Error> {
    if let Some(name) = name {
        return Ok(name.to_string());
    }
    let cuts = store.cuts().map_err(runtime)?;
    match cuts.as_slice() {
        [only] => Ok(only.name.clone()),
        [] => Err(Error::Config(
            CutError::Which(
                "the store holds no cut yet; import one with `shotrouter cut import FILE`".into(),
            )
            .to_string(),
        )),
        several => Err(Error::Config(
            CutError::Which(format!(
                "the store holds {} cuts; name one: {}",
                several.len(),
                several
                    .iter()
                    .map(|c| format!("`{}`", shown(&c.name)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .to_string(),
        )),
    }
}

/// Revision `revision` (latest by default) of `name`, or an error naming what exists.
fn find(store: &dyn CutStore, name: &str, revision: Option<i64>) -> Result<CutRevision, Error> {
    if let Some(found) = store.cut_revision(name, revision).map_err(runtime)? {
        return Ok(found);
    }
    let latest = store.cut_revision(name, None).map_err(runtime)?;
    Err(Error::Config(match (latest, revision) {
        (Some(latest), Some(n)) => format!(
            "cut `{}` has no revision {n}; its revisions are 1 to {}",
            shown(name),
            latest.revision
        ),
        _ => {
            let names: Vec<String> = store
                .cuts()
                .map_err(runtime)?
                .into_iter()
                .map(|c| format!("`{}`", shown(&c.name)))
                .collect();
            if names.is_empty() {
                format!("no cut `{}` in the store; it holds none yet", shown(name))
            } else {
                format!(
                    "no cut `{}` in the store; it holds {}",
                    shown(name),
                    names.join(", ")
                )
            }
        }
    }))
}

/// `shotrouter cut show [NAME] [--revision N]`.
///
/// # Errors
/// No such cut or revision (exit 2), no store, database errors.
pub fn show(
    name: Option<&str>,
    revision: Option<i64>,
    as_json: bool,
    place: &CutPlace,
) -> Result<ExitCode, Error> {
    let store = open_store(place)?;
    let name = which(&*store, name)?;
    let found = find(&*store, &name, revision)?;
    if as_json {
        return json(&found);
    }
    print(&render_revision(&found))
}

/// `shotrouter cut ranges [NAME]`.
///
/// # Errors
/// No such cut (exit 2), no store, database errors.
pub fn ranges(name: Option<&str>, as_json: bool, place: &CutPlace) -> Result<ExitCode, Error> {
    let store = open_store(place)?;
    let name = which(&*store, name)?;
    let ranges = CutRanges::of(&find(&*store, &name, None)?);
    if as_json {
        return json(&ranges);
    }
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
    print(&out)
}

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
fn shown(text: &str) -> String {
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
fn render_revision(r: &CutRevision) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str) -> Cut {
        cmx3600::parse(text, Rate::parse("24").unwrap()).unwrap()
    }

    const REV1: &str = "TITLE: t\n001  SH010 V C 01:00:00:00 01:00:02:00 01:00:00:00 01:00:02:00\n* FROM CLIP NAME: sh010_anim\n002  SH020 V C 02:00:00:00 02:00:01:00 01:00:02:00 01:00:03:00\n* FROM CLIP NAME: sh020_anim\n003  AX V C 00:00:00:00 00:00:01:00 01:00:03:00 01:00:04:00\n* FROM CLIP NAME: temp_title\n";
    const REV2: &str = "TITLE: t\n001  SH010 V C 01:00:00:04 01:00:02:00 01:00:00:00 01:00:01:20\n* FROM CLIP NAME: sh010_anim\n";

    #[test]
    fn a_revision_keeps_frame_numbers_lists_omitted_shots_and_unmatched_items() {
        let naming = CutSettings::default().naming;
        let first = revision_of("reel1", &cut(REV1), &naming, &[]);
        assert_eq!(first.revision, 1);
        let shots: Vec<_> = first
            .shots
            .iter()
            .map(|s| (s.shot.as_str(), s.change, s.cut_in, s.cut_out))
            .collect();
        assert_eq!(
            shots,
            [
                ("sh010", ShotChange::New, 1009, 1056),
                ("sh020", ShotChange::New, 1009, 1032)
            ]
        );
        assert_eq!(first.unmatched[0].clip.as_deref(), Some("temp_title"));
        assert_eq!(first.unmatched[0].origin, "line 6");
        assert_eq!(first.shots[0].items[0].record_in, "01:00:00:00");

        let second = revision_of("reel1", &cut(REV2), &naming, &[first]);
        let shots: Vec<_> = second
            .shots
            .iter()
            .map(|s| {
                (
                    s.shot.as_str(),
                    s.change,
                    s.cut_in,
                    s.cut_out,
                    s.items.len(),
                )
            })
            .collect();
        assert_eq!(
            shots,
            [
                ("sh010", ShotChange::CutChange, 1013, 1056, 1),
                ("sh020", ShotChange::Omitted, 1009, 1032, 0)
            ]
        );
        assert_eq!(second.revision, 2);
        assert_eq!(CutRanges::of(&second).shots[0].frames, "1005-1064");
    }

    #[test]
    fn formats_by_extension_then_content() {
        let cases = [
            ("a.EDL", "{", Format::Edl),
            ("a.otio", "TITLE", Format::Otio),
            ("a.aaf", "", Format::Converted("AAF")),
            ("a.fcpxml", "", Format::Converted("FCP XML")),
            ("cut", "  {\"OTIO_SCHEMA\"", Format::Otio),
            ("cut.txt", "TITLE: x", Format::Edl),
        ];
        for (path, text, want) in cases {
            assert_eq!(format_of(Path::new(path), text.as_bytes()), want, "{path}");
        }
    }

    #[test]
    fn otio_rates_map_to_known_ones_and_odd_ones_ask_for_fps() {
        let time = |rate: f64| {
            format!(
                "{{\"OTIO_SCHEMA\": \"Timeline.1\", \"global_start_time\": {{\"OTIO_SCHEMA\": \"RationalTime.1\", \"rate\": {rate}, \"value\": 0}}}}"
            )
        };
        let rate = |r: f64| otio_rate(Path::new("a.otio"), &time(r)).map(|r| r.to_string());
        assert_eq!(rate(24.0).unwrap(), "24");
        assert_eq!(rate(23.976023976023978).unwrap(), "23.976");
        assert_eq!(rate(29.97002997002997).unwrap(), "29.97");
        assert_eq!(rate(120.0).unwrap(), "120");
        let err = rate(23.5).unwrap_err().to_string();
        assert_eq!(
            err,
            "`a.otio` counts at 23.5 fps, which is no rate shotrouter knows; give `--fps` (e.g. `--fps 23.976`)"
        );
    }

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
