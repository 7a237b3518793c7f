//! The lineage walk and the staleness report, backend-neutral: each backend answers a few
//! look-ups ([`Source`]) and this module walks them breadth first, each file once, and shapes
//! the answers ([`LineageReport`], [`StaleProduct`]) the CLI and the API show.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::JobId;
use super::encoding::display_path;
use super::lineage::{Direction, LineageEdge, LineageReport, StaleProduct};
use super::queue::RootedPath;
use crate::media::sequence::sequence_paths;

/// A version as stored: `(ino, size, mtime_ns)`.
pub(crate) type Version = (i64, i64, i64);

/// A file as stored: root name and path bytes.
pub(crate) type Key = (String, Vec<u8>);

/// One job that read `input` and made `product`, as a backend reads it.
#[derive(Debug, Clone)]
pub(crate) struct RawEdge {
    pub job: JobId,
    pub rule: String,
    pub node: Option<String>,
    pub run_remote: Option<String>,
    pub finished_at: Option<i64>,
    /// A declared input (`job_inputs`), else the job's matched file.
    pub declared: bool,
    /// The version the job read.
    pub used: Version,
    /// The input (up: the file the walk goes on to; down: empty, see `from`).
    pub input: Key,
    /// Down: the `files` id of the input, one of the ids asked about.
    pub from: i64,
    /// The input's current version (up only; down knows its own).
    pub input_now: Option<(i64, Version)>,
    /// The product.
    pub product: Key,
    /// The product's own `files` row, its id and version (down only: a product that is no
    /// job's matched file nor declared input has none, and ends the walk).
    pub product_file: Option<(i64, Version)>,
}

/// What a backend answers for the walk.
pub(crate) trait Source {
    /// The backend's error.
    type Error;
    /// An absolute path of this node as the store keys it.
    fn rooted(&mut self, path: &Path) -> Result<RootedPath, Self::Error>;
    /// Where each root is mounted, for display (this node's mount first).
    fn roots(&mut self) -> Result<HashMap<String, Vec<u8>>, Self::Error>;
    /// A file's `files` row: its id and current version.
    fn file(&mut self, at: &Key) -> Result<Option<(i64, Version)>, Self::Error>;
    /// Whether some job made this file (an `outputs` row).
    fn is_product(&mut self, at: &Key) -> Result<bool, Self::Error>;
    /// The edges into a product: its job's matched file and declared inputs.
    fn up(&mut self, product: &Key, out: &mut Vec<RawEdge>) -> Result<(), Self::Error>;
    /// The edges out of files (one look-up for a whole level of the walk): the current
    /// products of the jobs that matched or read each, ordered by file as asked.
    fn down(&mut self, file_ids: &[i64], out: &mut Vec<RawEdge>) -> Result<(), Self::Error>;
}

/// Where the walk starts: the path itself when the store knows it, else the sequence of the
/// frame it names (its `####` path at the frame's padding or a shorter one).
fn start<S: Source>(src: &mut S, path: &Path) -> Result<(Key, PathBuf), S::Error> {
    let mut candidates = vec![path.to_path_buf()];
    candidates.extend(sequence_paths(path));
    for candidate in &candidates {
        let at = src.rooted(candidate)?;
        let key = key_of(&at);
        if src.file(&key)?.is_some() || src.is_product(&key)? {
            return Ok((key, candidate.clone()));
        }
    }
    Ok((key_of(&src.rooted(path)?), path.to_path_buf()))
}

fn key_of(at: &RootedPath) -> Key {
    (at.root.clone(), super::encoding::blob(&at.rel).to_vec())
}

/// Shows stored paths, each root's mount looked up once.
struct Shown(HashMap<String, Vec<u8>>);

impl Shown {
    /// As [`display_path`] shows it, in one allocation (a walk shows 100,000 of them).
    fn path(&self, (root, rel): &Key) -> String {
        let base = match self.0.get(root) {
            Some(base) if !root.is_empty() && !rel.is_empty() && !rel.starts_with(b"/") => base,
            base => return display_path(root, rel, base.map(Vec::as_slice)),
        };
        let mut joined = Vec::with_capacity(base.len() + 1 + rel.len());
        joined.extend_from_slice(base);
        if !base.ends_with(b"/") {
            joined.push(b'/');
        }
        joined.extend_from_slice(rel);
        String::from_utf8(joined)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

fn stored_version((ino, size, mtime): Version) -> super::StoredVersion {
    (0, ino as u64, size as u64, mtime)
}

/// The walk from `path` (absolute on this node), `depth` edges deep at most.
///
/// # Errors
/// The backend's.
pub(crate) fn lineage<S: Source>(
    src: &mut S,
    path: &Path,
    direction: Direction,
    depth: u32,
) -> Result<LineageReport, S::Error> {
    let (first, shown_path) = start(src, path)?;
    let shown = Shown(src.roots()?);
    let mut report = LineageReport {
        path: shown_path.to_string_lossy().into_owned(),
        direction,
        edges: Vec::new(),
        truncated: false,
    };
    let mut raw = Vec::new();
    match direction {
        Direction::Up => {
            let mut seen: HashSet<Key> = HashSet::new();
            seen.insert(first.clone());
            let mut frontier = vec![first];
            for level in 1..=depth {
                let mut next = Vec::new();
                for product in &frontier {
                    raw.clear();
                    src.up(product, &mut raw)?;
                    let product_shown = shown.path(product);
                    for mut e in raw.drain(..) {
                        let changed = e.input_now.is_some_and(|(_, now)| now != e.used);
                        let input_shown = shown.path(&e.input);
                        let input = std::mem::take(&mut e.input);
                        report.edges.push(edge(
                            level,
                            e,
                            input_shown,
                            changed,
                            product_shown.clone(),
                        ));
                        if seen.insert(input.clone()) {
                            next.push(input);
                        }
                    }
                }
                frontier = next;
                if frontier.is_empty() {
                    break;
                }
            }
            for product in &frontier {
                raw.clear();
                src.up(product, &mut raw)?;
                if !raw.is_empty() {
                    report.truncated = true;
                    break;
                }
            }
        }
        Direction::Down => {
            let Some((id, version)) = src.file(&first)? else {
                return Ok(report);
            };
            let mut seen: HashSet<i64> = HashSet::new();
            seen.insert(id);
            // Each level is one look-up of all its files.
            let mut frontier: HashMap<i64, (Version, String)> = HashMap::new();
            frontier.insert(id, (version, shown.path(&first)));
            let mut ids = vec![id];
            for level in 1..=depth {
                raw.clear();
                src.down(&ids, &mut raw)?;
                let mut next = HashMap::new();
                let mut next_ids = Vec::new();
                for e in raw.drain(..) {
                    let Some((now, input_shown)) = frontier.get(&e.from) else {
                        continue;
                    };
                    let product_shown = shown.path(&e.product);
                    let changed = *now != e.used;
                    if let Some((pid, pv)) = e.product_file
                        && seen.insert(pid)
                    {
                        next.insert(pid, (pv, product_shown.clone()));
                        next_ids.push(pid);
                    }
                    report
                        .edges
                        .push(edge(level, e, input_shown.clone(), changed, product_shown));
                }
                frontier = next;
                ids = next_ids;
                if ids.is_empty() {
                    break;
                }
            }
            if !ids.is_empty() {
                raw.clear();
                src.down(&ids, &mut raw)?;
                report.truncated = !raw.is_empty();
            }
        }
    }
    Ok(report)
}

fn edge(depth: u32, e: RawEdge, input: String, changed: bool, product: String) -> LineageEdge {
    LineageEdge {
        depth,
        input,
        role: if e.declared { "declared" } else { "matched" },
        input_version: Some(stored_version(e.used)),
        input_changed: changed,
        job: e.job,
        rule: e.rule,
        node: e.node,
        farm_run: super::farm_run(e.run_remote),
        product,
        finished_at: e.finished_at,
    }
}

/// One row a backend reads for [`stale`]: a current product and why it is stale.
#[derive(Debug, Clone)]
pub(crate) struct RawStale {
    pub product: Key,
    pub job: JobId,
    pub rule: String,
    /// A declared input whose current version differs from the one read: (input, read, now).
    pub input: Option<(Key, Version, Version)>,
    /// The rule's work hash changed since.
    pub rule_changed: bool,
}

/// The stale products, one per product, in product order.
pub(crate) fn stale(roots: HashMap<String, Vec<u8>>, rows: Vec<RawStale>) -> Vec<StaleProduct> {
    let shown = Shown(roots);
    let mut by_product: BTreeMap<Key, StaleProduct> = BTreeMap::new();
    for row in rows {
        let entry = by_product
            .entry(row.product.clone())
            .or_insert_with(|| StaleProduct {
                product: shown.path(&row.product),
                job: row.job,
                rule: row.rule.clone(),
                changed_inputs: Vec::new(),
                rule_changed: false,
            });
        entry.rule_changed |= row.rule_changed;
        if let Some((input, used, now)) = row.input {
            entry.changed_inputs.push(format!(
                "{} ({} → {})",
                shown.path(&input),
                version_text(used),
                version_text(now)
            ));
        }
    }
    by_product.into_values().collect()
}

/// A version for people: `2026-01-02T03:04:05.123Z, 10 B` (its mtime and size; the inode
/// alone changed shows as `ino 7`).
pub(crate) fn version_text((ino, size, mtime_ns): Version) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(mtime_ns.div_euclid(1_000_000).max(0) as u64);
    format!(
        "{}, {size} B, ino {ino}",
        humantime::format_rfc3339_millis(at)
    )
}
