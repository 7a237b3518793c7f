//! `shotrouter cut import|show|ranges`: reading a cut file (the I/O `crate::edit` leaves to its
//! callers, and `otioconvert` for AAF and FCP XML), computing its shot ranges and changes
//! against the stored revisions, storing it, and printing revisions and render ranges.
//!
//! A revision is computed from every revision before it, so frame numbers stay where earlier
//! revisions put them; the store refuses it when another import got there first.
//!
//! Reading and storing is [`crate::cutfile`]'s, which the watcher's import of `cuts.files`
//! shares. Files: `render` (text), `waste` (frames on disk against a revision).

mod render;
mod waste;

use std::path::Path;
use std::process::ExitCode;

use crate::app::cli::CutPlace;
use crate::app::ops::{json, print, runtime};
use crate::error::Error;
use crate::media::timecode::Rate;
use crate::rules::cuts::CutSettings;
use crate::store;
use crate::store::cuts::{CutRanges, CutRevision, CutStore};

pub use crate::cutfile::CutError;
use crate::cutfile::{Dedup, ImportError, Request};
pub(crate) use render::shown;
use render::{render_ranges, render_revision};

/// The shot naming of the rules' `cuts:` block, or the defaults.
pub(crate) fn settings(place: &CutPlace) -> Result<CutSettings, Error> {
    match &place.rules {
        Some(path) => Ok(crate::rules::load(path)?.cuts.unwrap_or_default()),
        None => Ok(CutSettings::default()),
    }
}

pub(crate) fn open_store(place: &CutPlace) -> Result<Box<dyn CutStore + Send>, Error> {
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
    let name = match name {
        Some("") => {
            return Err(Error::Config(
                "`--name` is empty; give the cut a name".into(),
            ));
        }
        Some(n) => n.to_string(),
        None => crate::cutfile::name_of(file)
            .ok_or_else(|| Error::Config("give the cut a name with `--name`".into()))?,
    };
    let source = crate::rules::absolute(file);
    let request = Request {
        file,
        source: &source,
        bytes: &bytes,
        name: &name,
        fps: fps.or(settings.fps),
        naming: &settings.naming,
        dedup: Dedup::Never,
    };
    let parsed = crate::cutfile::parse(&request).map_err(Error::failed)?;
    let mut store = open_store(place)?;
    let revision = crate::cutfile::store(&mut *store, &request, &parsed).map_err(|e| match e {
        ImportError::Cut(e) => Error::failed(e),
        ImportError::Store { source, .. } => runtime(*source),
    })?;
    if as_json {
        return json(&revision);
    }
    print(&render_revision(&revision))
}

/// The cut `name` names, or the only one in the store.
pub(crate) fn which(store: &dyn CutStore, name: Option<&str>) -> Result<String, Error> {
    if let Some(name) = name {
        return Ok(name.to_string());
    }
    let cuts = store.cuts().map_err(runtime)?;
    match cuts.as_slice() {
        [only] => Ok(only.name.clone()),
        [] => Err(Error::Config(
            "the store holds no cut yet; import one with `shotrouter cut import FILE`".into(),
        )),
        several => Err(Error::Config(format!(
            "the store holds {} cuts; name one: {}",
            several.len(),
            several
                .iter()
                .map(|c| format!("`{}`", shown(&c.name)))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Revision `revision` (latest by default) of `name`, or an error naming what exists.
pub(crate) fn find(
    store: &dyn CutStore,
    name: &str,
    revision: Option<i64>,
) -> Result<CutRevision, Error> {
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

/// `shotrouter cut waste [NAME]`.
///
/// # Errors
/// No `--rules` or no such cut (exit 2), bad rules, no store, database errors.
pub fn waste(name: Option<&str>, as_json: bool, place: &CutPlace) -> Result<ExitCode, Error> {
    let Some(rules) = &place.rules else {
        return Err(Error::Config(
            "`cut waste` needs `--rules`: its rules say which files are frames of which shot"
                .into(),
        ));
    };
    let set = crate::route::matcher::RuleSet::compile(crate::rules::load(rules)?)?;
    let store = open_store(place)?;
    let name = which(&*store, name)?;
    let report = waste::waste(&set, &find(&*store, &name, None)?);
    if as_json {
        return json(&report);
    }
    print(&waste::render_waste(&report))
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
    print(&render_ranges(&ranges))
}
