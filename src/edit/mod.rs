//! Cuts: the editorial's EDLs (CMX 3600) and OpenTimelineIO files read into one [`Cut`], the
//! frame ranges each shot covers in it ([`ShotRanges`]), and what changed between revisions
//! ([`diff()`]). Pure functions over text and values: reading files, the CLI, the store and routing
//! by these ranges belong to other floors.
//!
//! Frame numbers are whole frames at the cut's rate; every range is `[in, out)` in the cut
//! model and inclusive (`cut_in..=cut_out`) in shot frames, as editorial writes them.

pub mod cmx3600;
pub mod cut;
pub mod diff;
pub mod error;
pub mod naming;
pub mod otio;
pub mod ranges;

pub use cut::{Cut, CutItem, Origin, Track, Transition};
pub use diff::{Change, diff};
pub use error::EditError;
pub use naming::ShotNaming;
pub use ranges::{FrameClass, ItemRange, ShotRange, ShotRanges};
