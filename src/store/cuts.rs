//! Editorial's cuts as the store keeps them: each import of a cut is a new numbered revision
//! (1, 2, ...) holding what was read (source file, its hash, rate) and, per shot, the frames it
//! covers and its change against the revision before. A revision is written whole and never
//! changed; the caller computes it (with `crate::edit`) from the revisions before it.
//!
//! Each backend keeps a revision as one row with its shots as JSON, plus one `cut_shots` row per
//! shot present, so a shot's latest ranges are one indexed query away.

use serde::{Deserialize, Serialize};

use super::StoreError;

/// What happened to a shot since the previous revision (`crate::edit::Change`, as stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShotChange {
    /// In no earlier revision.
    New,
    /// In the previous revision, not in this one.
    Omitted,
    /// Not in the previous revision, but in one before it.
    Reinstated,
    /// Its cut in or out moved within the previous handles.
    CutChange,
    /// It shows frames outside the previous handles: frames that do not exist yet.
    Extended,
    /// The same frames as before.
    NoChange,
}

impl ShotChange {
    /// The words `cut show` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            ShotChange::New => "new",
            ShotChange::Omitted => "omitted",
            ShotChange::Reinstated => "reinstated",
            ShotChange::CutChange => "cut change",
            ShotChange::Extended => "extended",
            ShotChange::NoChange => "no change",
        }
    }
}

/// One item of the cut that shows a shot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutShotItem {
    /// The EDL's event number (for OTIO, the item's place in record order).
    pub event: u32,
    /// The clip name, if the cut gives one.
    pub clip: Option<String>,
    /// The source reel, if the cut gives one.
    pub reel: Option<String>,
    /// Record in, as the editor's timeline labels it.
    pub record_in: String,
    /// Record out (the first frame after the item).
    pub record_out: String,
    /// The first shot frame the item shows.
    pub first: i64,
    /// The last shot frame the item shows.
    pub last: i64,
    /// Source frames per record frame: 1 normal, 0 a freeze, negative reversed.
    pub speed: f64,
}

/// A shot in one revision: its frames and its change. An omitted shot keeps the frames of the
/// revision it was last in, and no items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutShot {
    /// The shot's name, from the `cuts:` pattern's `shot` capture.
    pub shot: String,
    /// Its change against the previous revision.
    pub change: ShotChange,
    /// First frame kept, handles included.
    pub head_in: i64,
    /// First frame the cut shows.
    pub cut_in: i64,
    /// Last frame the cut shows.
    pub cut_out: i64,
    /// Last frame kept, handles included.
    pub tail_out: i64,
    /// The source frame that is `cut_in`: how later revisions keep frame numbers.
    pub source_in: i64,
    /// The items showing it, in record order.
    pub items: Vec<CutShotItem>,
}

/// A video item of the cut that no shot was found for: listed, never dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnmatchedItem {
    /// The EDL's event number (for OTIO, the item's place in record order).
    pub event: u32,
    /// The clip name, if any.
    pub clip: Option<String>,
    /// The source reel, if any.
    pub reel: Option<String>,
    /// Record in, as the timeline labels it.
    pub record_in: String,
    /// Record out.
    pub record_out: String,
    /// Where it was read: `line 12`, ``clip `x` (track `V1`)``.
    pub origin: String,
}

/// One stored revision of a cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutRevision {
    /// The cut's name (`--name`, else the file's stem).
    pub name: String,
    /// 1 for the first import, then 2, 3, ...
    pub revision: i64,
    /// When it was imported, unix ms.
    pub imported_at: i64,
    /// The file it was read from, as given.
    pub source: String,
    /// The file's content hash (`xxh3:` and 16 hex digits).
    pub hash: String,
    /// The rate its frames count in (`24`, `29.97`).
    pub fps: String,
    /// Every shot present, and the omitted ones, by name.
    pub shots: Vec<CutShot>,
    /// Video items that name no shot.
    pub unmatched: Vec<UnmatchedItem>,
}

impl CutRevision {
    /// The shots this revision shows (not the omitted ones).
    pub fn present(&self) -> impl Iterator<Item = &CutShot> {
        self.shots
            .iter()
            .filter(|s| s.change != ShotChange::Omitted)
    }
}

/// A cut as `cut show` without a name lists it: its latest revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutSummary {
    /// The cut's name.
    pub name: String,
    /// Its latest revision's number.
    pub revision: i64,
    /// When that revision was imported, unix ms.
    pub imported_at: i64,
    /// The file it was read from.
    pub source: String,
    /// How many shots it shows.
    pub shots: i64,
}

/// A shot's frames in the latest revision of a cut (what routing will look up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShotFrames {
    /// The cut.
    pub cut: String,
    /// Its latest revision.
    pub revision: i64,
    /// The shot.
    pub shot: String,
    /// First frame kept.
    pub head_in: i64,
    /// First frame shown.
    pub cut_in: i64,
    /// Last frame shown.
    pub cut_out: i64,
    /// Last frame kept.
    pub tail_out: i64,
}

/// The cuts side of the store, for `shotrouter cut` and the API.
pub trait CutStore {
    /// Every cut with its latest revision, by name.
    ///
    /// # Errors
    /// Database errors.
    fn cuts(&self) -> Result<Vec<CutSummary>, StoreError>;

    /// Every revision of `name`, oldest first (empty when there is no such cut): the history a
    /// new revision's frame numbers and changes are computed from.
    ///
    /// # Errors
    /// Database errors; a stored revision that does not read back.
    fn cut_revisions(&self, name: &str) -> Result<Vec<CutRevision>, StoreError>;

    /// Revision `revision` of `name`, or its latest with `None`; `None` when there is none.
    ///
    /// # Errors
    /// Database errors; a stored revision that does not read back.
    fn cut_revision(
        &self,
        name: &str,
        revision: Option<i64>,
    ) -> Result<Option<CutRevision>, StoreError>;

    /// Stores `cut` as the next revision of its cut: `cut.revision` must be one past the
    /// latest stored (it was computed from them).
    ///
    /// # Errors
    /// [`StoreError::CutRevision`] when that number is taken or not the next (another import
    /// ran meanwhile); database errors.
    fn add_cut_revision(&mut self, cut: &CutRevision) -> Result<(), StoreError>;

    /// `shot`'s frames in the latest revision of each cut that shows it.
    ///
    /// # Errors
    /// Database errors.
    fn shot_frames(&self, shot: &str) -> Result<Vec<ShotFrames>, StoreError>;

    /// How many revisions of all cuts are stored. Revisions are never changed or removed, so
    /// a new count means a new revision: the watcher's cheap check, at each store poll,
    /// before it reads the cuts again.
    ///
    /// # Errors
    /// Database errors.
    fn cut_revision_count(&self) -> Result<i64, StoreError>;

    /// The latest revision of every cut, by name: what routing and the waste go by.
    ///
    /// # Errors
    /// Database errors; a stored revision that does not read back.
    fn latest_revisions(&self) -> Result<Vec<CutRevision>, StoreError> {
        let mut revisions = Vec::new();
        for summary in self.cuts()? {
            if let Some(r) = self.cut_revision(&summary.name, Some(summary.revision))? {
                revisions.push(r);
            }
        }
        Ok(revisions)
    }
}

/// A stored revision's shots or unmatched items as JSON.
pub(super) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("cut rows serialize: plain data")
}

/// A stored revision's JSON read back.
pub(super) fn from_json<T: for<'de> Deserialize<'de>>(
    name: &str,
    revision: i64,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::CutData {
        name: name.to_string(),
        revision,
        reason: e.to_string(),
    })
}

/// What a render submitter should render for one shot: `head_in` to `tail_out`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderRange {
    /// The shot.
    pub shot: String,
    /// First frame to render, handles included.
    pub head_in: i64,
    /// First frame the cut shows.
    pub cut_in: i64,
    /// Last frame the cut shows.
    pub cut_out: i64,
    /// Last frame to render, handles included.
    pub tail_out: i64,
    /// `head_in-tail_out`, as render submitters take a frame range.
    pub frames: String,
}

/// The frames to render for every shot a revision shows (`cut ranges`, `/api/v1/cuts/{name}/ranges`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutRanges {
    /// The cut.
    pub cut: String,
    /// The revision the ranges are from.
    pub revision: i64,
    /// The rate its frames count in.
    pub fps: String,
    /// One per shot shown, by name; omitted shots are left out.
    pub shots: Vec<RenderRange>,
}

impl CutRanges {
    /// The ranges of `revision`.
    pub fn of(revision: &CutRevision) -> CutRanges {
        CutRanges {
            cut: revision.name.clone(),
            revision: revision.revision,
            fps: revision.fps.clone(),
            shots: revision
                .present()
                .map(|s| RenderRange {
                    shot: s.shot.clone(),
                    head_in: s.head_in,
                    cut_in: s.cut_in,
                    cut_out: s.cut_out,
                    tail_out: s.tail_out,
                    frames: format!("{}-{}", s.head_in, s.tail_out),
                })
                .collect(),
        }
    }
}
