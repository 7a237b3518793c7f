//! Cut files imported into the store: a file read into a [`Cut`](crate::edit::Cut) (by
//! extension or content, `otioconvert` for AAF and FCP XML), its next revision computed from
//! the stored ones, stored with a hash of its content. Shared by `shotrouter cut import` and
//! the watcher's import of `cuts.files`, so both store the same revision for the same file.
//!
//! Files: `file` (reading a cut file), `revision` (computing the next revision), `extended`
//! (which frames a revision needs that its previous one did not keep).

mod extended;
mod file;
mod revision;

use std::path::Path;

use crate::edit::ShotNaming;
use crate::media::timecode::Rate;
use crate::store::StoreError;
use crate::store::cuts::{CutRevision, CutStore};

pub use extended::{ExtendedShot, extended_shots};
pub use file::{CutError, read_cut};
pub use revision::revision_of;

/// The content hash stored with each revision (`xxh3:` and 16 hex digits): what tells a
/// re-saved or re-seen file from a changed one.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("xxh3:{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

/// The cut a file names when no name is given: its stem (`reel1.edl` is `reel1`).
pub fn name_of(path: &Path) -> Option<String> {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
}

/// When an import is left out because the content is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedup {
    /// Always store (`cut import`: the user asked for it).
    Never,
    /// When the latest revision has the same hash (a file saved again, or seen again).
    Latest,
    /// When any revision has it: a restart re-seeing old cut files in whatever order the scan
    /// lists them must not make them revisions again.
    Any,
}

/// What to import.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The file, as messages name it.
    pub file: &'a Path,
    /// The file as the revision records it (absolute).
    pub source: &'a Path,
    /// Its content, read once so the hash and the cut are of the same bytes.
    pub bytes: &'a [u8],
    /// The cut's name.
    pub name: &'a str,
    /// The rate an EDL counts in; an `.otio` file's own when `None`.
    pub fps: Option<Rate>,
    /// How shots are named, their handles and first frame.
    pub naming: &'a ShotNaming,
    /// Whether an unchanged file is left out.
    pub dedup: Dedup,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    /// Stored as this revision.
    Stored(CutRevision),
    /// Left out: revision `revision` already holds this content.
    Unchanged {
        /// The stored revision with the same hash.
        revision: i64,
    },
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is no cut the readers take (names the file and line or clip).
    #[error(transparent)]
    Cut(#[from] CutError),
    /// The store refused or failed (another import took the revision number first).
    #[error("cannot store cut `{name}`: {source}")]
    Store {
        /// The cut.
        name: String,
        /// The store's error (boxed: it is large, and rare).
        #[source]
        source: Box<StoreError>,
    },
}

/// A file read as a cut, not stored yet.
#[derive(Debug, Clone)]
pub struct Parsed {
    cut: crate::edit::Cut,
    rate: Rate,
}

/// Reads `request.bytes` as a cut: what `cut import` does before it opens the store, so a
/// broken file is refused for what it is wherever the store is.
///
/// # Errors
/// A file that is no cut, naming its line or clip.
pub fn parse(request: &Request<'_>) -> Result<Parsed, CutError> {
    let (cut, rate) = read_cut(request.file, request.bytes, request.fps)?;
    Ok(Parsed { cut, rate })
}

/// Stores `parsed` as the next revision of `request.name`, computed from every stored one.
///
/// # Errors
/// Store errors, or another import that took the revision number first.
pub fn store(
    store: &mut dyn CutStore,
    request: &Request<'_>,
    parsed: &Parsed,
) -> Result<CutRevision, ImportError> {
    let earlier = store.cut_revisions(request.name).map_err(stored(request))?;
    add(store, request, parsed, &earlier)
}

fn stored(request: &Request<'_>) -> impl Fn(StoreError) -> ImportError {
    let name = request.name.to_string();
    move |source| ImportError::Store {
        name: name.clone(),
        source: Box::new(source),
    }
}

fn add(
    store: &mut dyn CutStore,
    request: &Request<'_>,
    parsed: &Parsed,
    earlier: &[CutRevision],
) -> Result<CutRevision, ImportError> {
    let revision = CutRevision {
        imported_at: crate::store::now_ms(),
        source: request.source.display().to_string(),
        hash: content_hash(request.bytes),
        fps: parsed.rate.to_string(),
        ..revision_of(request.name, &parsed.cut, request.naming, earlier)
    };
    store.add_cut_revision(&revision).map_err(stored(request))?;
    Ok(revision)
}

/// Reads `request.bytes` as a cut and stores it as the next revision of `request.name`,
/// unless [`Dedup`] finds its content already stored (checked first: an unchanged file costs
/// no parse).
///
/// # Errors
/// A file that is no cut ([`ImportError::Cut`]); store errors.
pub fn import(store: &mut dyn CutStore, request: Request<'_>) -> Result<Imported, ImportError> {
    let hash = content_hash(request.bytes);
    let earlier = store
        .cut_revisions(request.name)
        .map_err(stored(&request))?;
    let same = match request.dedup {
        Dedup::Never => None,
        Dedup::Latest => earlier.last().filter(|r| r.hash == hash),
        Dedup::Any => earlier.iter().rev().find(|r| r.hash == hash),
    };
    if let Some(same) = same {
        return Ok(Imported::Unchanged {
            revision: same.revision,
        });
    }
    let parsed = parse(&request)?;
    add(store, &request, &parsed, &earlier).map(Imported::Stored)
}

#[cfg(test)]
mod tests;
