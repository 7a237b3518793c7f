//! A job's portable plan: what a worker on another machine needs to run it without the rules
//! file, stored with the job (the store keeps it as opaque text). The watcher that planned the
//! job wrote absolute paths of its own mounts into the argv, the product and the sequence view;
//! a worker maps each of its roots (and output folders) to where that tree is mounted on the
//! worker (`--map shots=/mnt/shots`, Tdarr's path translators), refusing a job whose paths it
//! cannot map.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deliver::ale::{AleClip, AleSheet};
use crate::deliver::copy::{TransferKind, TransferPlan};
use crate::deliver::hash::HashKind;
use crate::deliver::publish::OutputPaths;
use crate::deliver::verify::Expectations;
use crate::exec::runner::JobSpec;
use crate::media::sequence::View;
use crate::store::queue::ClaimedJob;

/// The plan's format; a worker refuses plans of a newer one. A plan that needs nothing of a
/// later format is written as format 1, so older workers keep taking it.
const FORMAT: u32 = 3;

/// Format 2: a KeyKode header check's perforations per frame and stock codes, and an ALE
/// beside the product, which a format-1 worker would silently drop.
const FORMAT_EDITORIAL: u32 = 2;

/// Format 3: a `copy:`/`move:`, which an older worker would silently skip (a job without
/// commands would then succeed having delivered nothing).
const FORMAT_TRANSFER: u32 = 3;

/// What the watcher knew when it planned the job, beyond its argv.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortablePlan {
    /// The plan's format: 1, or 2 when it carries an ALE or a DPX KeyKode check.
    pub format: u32,
    /// The watcher's roots: (name, path on the watcher), escaped text (`%` and non-UTF-8 bytes escaped).
    pub roots: Vec<(String, String)>,
    /// Output folders outside the roots, on the watcher.
    pub outputs: Vec<String>,
    /// The product's final and temp paths, on the watcher.
    pub output: Option<(String, String)>,
    /// Longest the job may run, ms.
    pub timeout_ms: Option<u64>,
    /// Attempts after the first.
    pub retries: u32,
    /// Wait before the first retry, ms (doubling after).
    pub backoff_ms: u64,
    /// `verify:` checks.
    pub verify: Option<Vec<(String, String)>>,
    /// A sequence's view folder and its links, on the watcher.
    pub view: Option<(String, Vec<(String, String)>)>,
    /// Perforations per frame of the rule's film format, for a DPX header's KeyKode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perfs_per_frame: Option<u32>,
    /// The rule's KeyKode stock codes (manufacturer, film type), for a header's KeyKode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_codes: Option<(u32, u32)>,
    /// The ALE published beside the product: its path on the watcher (escaped as `roots`) and rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ale: Option<PortableAle>,
    /// The rule's `copy:`/`move:`, its paths on the watcher (escaped as `roots`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<PortableTransfer>,
}

/// A [`TransferPlan`] in text form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortableTransfer {
    /// `copy` or `move`.
    pub kind: String,
    /// The destination file on the watcher, escaped text.
    pub to: String,
    /// The hash names (`xxh64`...).
    pub hashes: Vec<String>,
    /// The ASC MHL folder on the watcher, escaped text.
    pub mhl_root: Option<String>,
}

/// An [`AleSheet`] with its path in text form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortableAle {
    /// The ALE's final path on the watcher, escaped text (`%` and non-UTF-8 bytes escaped).
    pub path: String,
    /// `FPS`.
    pub fps: String,
    /// `VIDEO_FORMAT`.
    pub video_format: String,
    /// The rows.
    pub clips: Vec<AleClip>,
}

impl PortablePlan {
    /// The plan of a job the watcher planned as `spec`, under `roots` and `outputs`.
    pub fn of(
        spec: &JobSpec,
        roots: &[(String, PathBuf)],
        outputs: &[PathBuf],
        retries: u32,
        backoff: Duration,
    ) -> PortablePlan {
        let ale = spec
            .output
            .as_ref()
            .and_then(|o| o.ale.as_ref())
            .map(|sheet| PortableAle {
                path: escape(&sheet.final_path),
                fps: sheet.fps.clone(),
                video_format: sheet.video_format.clone(),
                clips: sheet.clips.clone(),
            });
        let perfs_per_frame = spec.verify.as_ref().and_then(|v| v.perfs_per_frame);
        let stock_codes = spec.verify.as_ref().and_then(|v| v.stock_codes);
        let transfer = spec.transfer.as_ref().map(|t| PortableTransfer {
            kind: t.kind.as_str().to_string(),
            to: escape(&t.to),
            hashes: t.hashes.iter().map(|h| h.as_str().to_string()).collect(),
            mhl_root: t.mhl_root.as_ref().map(|r| escape(r)),
        });
        PortablePlan {
            format: if transfer.is_some() {
                FORMAT_TRANSFER
            } else if ale.is_some() || perfs_per_frame.is_some() || stock_codes.is_some() {
                FORMAT_EDITORIAL
            } else {
                1
            },
            transfer,
            perfs_per_frame,
            stock_codes,
            ale,
            roots: roots.iter().map(|(n, p)| (n.clone(), escape(p))).collect(),
            outputs: outputs.iter().map(|p| escape(p)).collect(),
            output: spec
                .output
                .as_ref()
                .map(|o| (escape(&o.final_path), escape(&o.temp_path))),
            timeout_ms: spec.timeout.map(|t| t.as_millis() as u64),
            retries,
            backoff_ms: backoff.as_millis() as u64,
            verify: spec.verify.as_ref().map(|v| v.checks.clone()),
            view: spec.view.as_ref().map(|v| {
                (
                    escape(&v.dir),
                    v.links
                        .iter()
                        .map(|(l, t)| (escape(l), escape(t)))
                        .collect(),
                )
            }),
        }
    }

    /// The watcher's roots: name and path on the watcher.
    pub fn root_paths(&self) -> Vec<(String, PathBuf)> {
        self.roots
            .iter()
            .map(|(name, path)| (name.clone(), unescape(path)))
            .collect()
    }

    /// As stored with the job.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read back from the job.
    ///
    /// # Errors
    /// A plan this build cannot read.
    pub fn from_text(text: &str) -> Result<PortablePlan, String> {
        let plan: PortablePlan =
            serde_json::from_str(text).map_err(|e| format!("unreadable job plan: {e}"))?;
        if plan.format > FORMAT {
            return Err(format!(
                "the job was planned by a newer shotrouter (plan format {}); upgrade this worker",
                plan.format
            ));
        }
        Ok(plan)
    }
}

/// Where this worker finds each of the watcher's trees: (watcher path, local path) pairs.
#[derive(Debug, Clone, Default)]
pub struct PathMap {
    /// `--map` entries: a root's name or an absolute path on the watcher, and the local path.
    pub entries: Vec<(String, PathBuf)>,
}

impl PathMap {
    /// The local path of a watcher root or output folder: a `--map` for its name or its path,
    /// else the same path when it exists here and is not empty (the tree is mounted at the
    /// same place; an empty folder there is taken for an unmounted mount point).
    fn local(&self, name: Option<&str>, watcher: &Path) -> Option<PathBuf> {
        let by_name = name.and_then(|n| self.entries.iter().find(|(k, _)| k == n));
        let by_path = self.entries.iter().find(|(k, _)| Path::new(k) == watcher);
        match by_name.or(by_path) {
            Some((_, local)) => Some(local.clone()),
            // An empty folder at the watcher's path is most likely a mount point whose volume
            // is not mounted: a product published there would never reach the shared tree.
            None => std::fs::read_dir(watcher)
                .is_ok_and(|mut entries| entries.next().is_some())
                .then(|| watcher.to_path_buf()),
        }
    }

    /// Each of these roots and whether this worker can map it (those it claims jobs of).
    pub fn mappable_roots(&self, known: &[(String, PathBuf)]) -> Vec<(String, bool)> {
        known
            .iter()
            .map(|(name, path)| (name.clone(), self.local(Some(name), path).is_some()))
            .collect()
    }
}

/// How a failed attempt is tried again, from the rule the watcher planned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Attempts after the first.
    pub retries: u32,
    /// Wait before the first retry (doubling after).
    pub backoff: Duration,
}

/// Builds what the runner needs from a claimed job: every watcher path mapped to this machine.
///
/// # Errors
/// A root or output folder this worker cannot map, a missing input, an unreadable plan: the
/// worker declines the job, leaving it to another node.
pub fn job_spec(
    job: &ClaimedJob,
    map: &PathMap,
    state_dir: &Path,
) -> Result<(JobSpec, Retries), String> {
    let plan = PortablePlan::from_text(&job.plan)?;
    let retries = Retries {
        retries: plan.retries,
        backoff: Duration::from_millis(plan.backoff_ms),
    };
    let mut pairs: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut input_root = None;
    for (name, text) in &plan.roots {
        let watcher = unescape(text);
        let local = map.local(Some(name), &watcher);
        if name == &job.input.root {
            input_root = Some(local.clone().ok_or_else(|| {
                format!(
                    "root `{name}` ({}) is not mounted on this worker; give --map {name}=PATH",
                    watcher.display()
                )
            })?);
        }
        if let Some(local) = local {
            pairs.push((watcher, local));
        }
    }
    for text in &plan.outputs {
        let watcher = unescape(text);
        if let Some(local) = map.local(None, &watcher) {
            pairs.push((watcher, local));
        }
    }
    let root = input_root
        .ok_or_else(|| format!("the job's root `{}` is not in its plan", job.input.root))?;
    let id = job.claim.id.to_string();
    let view_dir = state_dir.join("views").join(&id);
    if let Some((dir, _)) = &plan.view {
        pairs.push((unescape(dir), view_dir.clone()));
    }
    // Longest first, so a root nested in another maps by its own entry.
    pairs.sort_by_key(|(w, _)| std::cmp::Reverse(w.as_os_str().len()));
    let mapped = |p: &Path| -> Result<PathBuf, String> {
        pairs
            .iter()
            .find_map(|(w, l)| p.strip_prefix(w).ok().map(|rest| l.join(rest)))
            .ok_or_else(|| {
                format!(
                    "`{}` is outside every tree this worker can map; give --map",
                    p.display()
                )
            })
    };
    let path = root.join(&job.input.rel);
    let input_gone = if plan.view.is_some() {
        !path.parent().is_some_and(Path::is_dir)
    } else {
        std::fs::symlink_metadata(&path).is_err()
    };
    if input_gone {
        return Err(format!(
            "input `{}` is missing on this worker",
            path.display()
        ));
    }
    let ale = match &plan.ale {
        Some(ale) => Some(AleSheet {
            final_path: mapped(&unescape(&ale.path))?,
            fps: ale.fps.clone(),
            video_format: ale.video_format.clone(),
            clips: ale.clips.clone(),
        }),
        None => None,
    };
    let output = match &plan.output {
        Some((final_path, temp_path)) => Some(OutputPaths {
            final_path: mapped(&unescape(final_path))?,
            temp_path: mapped(&unescape(temp_path))?,
            ale,
        }),
        None => None,
    };
    let view = match &plan.view {
        Some((_, links)) => Some(View {
            dir: view_dir,
            links: links
                .iter()
                .map(|(l, t)| Ok((mapped(&unescape(l))?, mapped(&unescape(t))?)))
                .collect::<Result<_, String>>()?,
        }),
        None => None,
    };
    let transfer = match &plan.transfer {
        Some(t) => Some(TransferPlan {
            kind: match t.kind.as_str() {
                "copy" => TransferKind::Copy,
                "move" => TransferKind::Move,
                other => return Err(format!("unknown delivery `{other}` in the job's plan")),
            },
            to: mapped(&unescape(&t.to))?,
            hashes: t
                .hashes
                .iter()
                .map(|h| {
                    HashKind::parse(h)
                        .ok_or_else(|| format!("unknown hash `{h}` in the job's plan"))
                })
                .collect::<Result<_, _>>()?,
            mhl_root: match &t.mhl_root {
                Some(root) => Some(mapped(&unescape(root))?),
                None => None,
            },
        }),
        None => None,
    };
    let steps = job
        .steps
        .iter()
        .map(|argv| argv.iter().map(|arg| map_arg(arg, &pairs)).collect())
        .collect();
    let spec = JobSpec {
        transfer,
        log_path: state_dir
            .join("logs")
            .join(&job.rule)
            .join(format!("{id}.log")),
        id,
        rule: job.rule.clone(),
        path,
        steps,
        output,
        allowed_roots: pairs.iter().map(|(_, l)| l.clone()).collect(),
        timeout: plan.timeout_ms.map(Duration::from_millis),
        attempt: job.claim.attempt,
        claim: Some(job.claim),
        view,
        verify: plan.verify.map(|checks| Expectations {
            checks,
            perfs_per_frame: plan.perfs_per_frame,
            stock_codes: plan.stock_codes,
        }),
        // A worker has no telemetry snapshot to show progress in (yet): its plan carries none.
        progress: false,
        total_frames: None,
    };
    Ok((spec, retries))
}

/// An argument with every watcher path in it mapped: the whole argument, or each place where a
/// path starts inside it (at its start, or after `=`, `:`, `,` or a space: `-i=/mnt/shots/a.tif`,
/// `{out}` inside a longer one) with a mapped folder and a `/`. At each such place the longest
/// folder that matches decides, even when it maps to itself, so a shorter one never rewrites a
/// path inside a longer one; text that merely contains a folder's name elsewhere
/// (`--lut=/luts/shots/x`) is left alone.
fn map_arg(arg: &OsString, pairs: &[(PathBuf, PathBuf)]) -> OsString {
    for (watcher, local) in pairs {
        if arg.as_os_str() == watcher.as_os_str() {
            return local.clone().into_os_string();
        }
    }
    let with_slash = |p: &Path| {
        let mut bytes = p.as_os_str().as_bytes().to_vec();
        if bytes.last() != Some(&b'/') {
            bytes.push(b'/');
        }
        bytes
    };
    // Longest first (the caller sorts them), so the first match at a place is the deepest.
    let folders: Vec<(Vec<u8>, Vec<u8>)> = pairs
        .iter()
        .map(|(w, l)| (with_slash(w), with_slash(l)))
        .collect();
    let bytes = arg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let starts_path = at == 0 || matches!(bytes[at - 1], b'=' | b':' | b',' | b' ');
        let found = starts_path
            .then(|| {
                folders
                    .iter()
                    .find(|(from, _)| bytes[at..].starts_with(from))
            })
            .flatten();
        match found {
            Some((from, to)) => {
                out.extend_from_slice(to);
                at += from.len();
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// A path as JSON text without loss: `%` and bytes that are not UTF-8 as `%XX`.
fn escape(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                out.push_str(&text.replace('%', "%25"));
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(
                    &std::str::from_utf8(good)
                        .unwrap_or_default()
                        .replace('%', "%25"),
                );
                let n = e.error_len().unwrap_or(bad.len());
                for byte in &bad[..n] {
                    out.push_str(&format!("%{byte:02X}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

fn unescape(text: &str) -> PathBuf {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_survive_the_text_form() {
        for raw in [&b"/s/a b%20\xff\xfe.tif"[..], b"/plain", b"/100%/x\n"] {
            let path = PathBuf::from(OsString::from_vec(raw.to_vec()));
            assert_eq!(unescape(&escape(&path)), path);
        }
    }

    #[test]
    fn an_ale_and_a_dpx_keykode_check_travel_to_a_worker_mapped() {
        let watcher = tempfile::tempdir().expect("dir");
        let farm = tempfile::tempdir().expect("dir");
        std::fs::write(farm.path().join("a.1001.dpx"), b"frame").expect("input");
        let on_watcher = |name: &str| watcher.path().join(name);
        let clip = AleClip {
            name: "a".into(),
            tape: "a".into(),
            source_file: "a.mxf".into(),
            start: "01:00:00:00".into(),
            end: "01:00:00:01".into(),
            keykode: None,
        };
        let mut spec = JobSpec {
            id: "1".into(),
            rule: "r".into(),
            path: on_watcher("a.1001.dpx"),
            steps: vec![vec!["cp".into()]],
            output: Some(OutputPaths {
                final_path: on_watcher("a.mxf"),
                temp_path: on_watcher(".a.t.mxf"),
                ale: Some(AleSheet {
                    final_path: on_watcher("a.ale"),
                    fps: "24".into(),
                    video_format: "1080".into(),
                    clips: vec![clip.clone()],
                }),
            }),
            allowed_roots: vec![watcher.path().to_path_buf()],
            timeout: None,
            log_path: "/l".into(),
            attempt: 1,
            claim: None,
            view: None,
            progress: false,
            total_frames: None,
            transfer: None,
            verify: Some(Expectations {
                checks: vec![("keykode".into(), "KU 22 9012 1234+05".into())],
                perfs_per_frame: Some(4),
                stock_codes: Some((1, 22)),
            }),
        };
        let roots = [("shots".to_string(), watcher.path().to_path_buf())];
        let plan = PortablePlan::of(&spec, &roots, &[], 0, Duration::ZERO);
        assert_eq!(plan.format, FORMAT_EDITORIAL, "older workers refuse it");
        let job = ClaimedJob {
            claim: crate::store::queue::Claim {
                id: 1,
                token: 1,
                attempt: 1,
            },
            rule: "r".into(),
            input: crate::store::queue::RootedPath {
                root: "shots".into(),
                rel: "a.1001.dpx".into(),
            },
            steps: spec.steps.clone(),
            output: Some(on_watcher("a.mxf")),
            plan: plan.to_text(),
        };
        let map = PathMap {
            entries: vec![("shots".into(), farm.path().to_path_buf())],
        };
        let (mapped, _) = job_spec(&job, &map, Path::new("/state")).expect("mapped");
        let sheet = mapped.output.and_then(|o| o.ale).expect("the ALE travels");
        assert_eq!(sheet.final_path, farm.path().join("a.ale"));
        assert_eq!(sheet.clips, [clip]);
        let verify = mapped.verify.expect("verify");
        assert_eq!(
            (verify.perfs_per_frame, verify.stock_codes),
            (Some(4), Some((1, 22)))
        );

        // Without either, the plan is the one format-1 workers already read.
        spec.output.as_mut().expect("output").ale = None;
        spec.verify = None;
        let plain = PortablePlan::of(&spec, &roots, &[], 0, Duration::ZERO);
        assert_eq!(plain.format, 1);
        let text = plain.to_text();
        assert!(
            !text.contains("\"ale\"") && !text.contains("\"perfs_per_frame\""),
            "{text}"
        );
    }

    #[test]
    fn a_copy_or_move_travels_to_a_worker_mapped_and_older_workers_refuse_it() {
        let watcher = tempfile::tempdir().expect("dir");
        let farm = tempfile::tempdir().expect("dir");
        let (farm_shots, farm_san) = (farm.path().join("shots"), farm.path().join("san"));
        std::fs::create_dir_all(&farm_shots).expect("shots");
        std::fs::create_dir_all(&farm_san).expect("san");
        std::fs::write(farm_shots.join("a.mxf"), b"media").expect("input");
        let (shots, san) = (watcher.path().join("shots"), watcher.path().join("san"));
        let spec = JobSpec {
            id: "1".into(),
            rule: "r".into(),
            path: shots.join("a.mxf"),
            steps: Vec::new(),
            output: None,
            allowed_roots: vec![shots.clone(), san.clone()],
            timeout: None,
            log_path: "/l".into(),
            attempt: 1,
            claim: None,
            view: None,
            verify: None,
            progress: false,
            total_frames: None,
            transfer: Some(TransferPlan {
                kind: TransferKind::Move,
                to: san.join("day1/a.mxf"),
                hashes: vec![HashKind::Xxh64, HashKind::Md5],
                mhl_root: Some(san.join("day1")),
            }),
        };
        let roots = [("shots".to_string(), shots.clone())];
        let plan = PortablePlan::of(&spec, &roots, std::slice::from_ref(&san), 0, Duration::ZERO);
        assert_eq!(plan.format, FORMAT_TRANSFER, "older workers refuse it");
        let job = ClaimedJob {
            claim: crate::store::queue::Claim {
                id: 1,
                token: 1,
                attempt: 1,
            },
            rule: "r".into(),
            input: crate::store::queue::RootedPath {
                root: "shots".into(),
                rel: "a.mxf".into(),
            },
            steps: Vec::new(),
            output: None,
            plan: plan.to_text(),
        };
        let map = PathMap {
            entries: vec![
                ("shots".into(), farm_shots.clone()),
                (san.to_string_lossy().into_owned(), farm_san.clone()),
            ],
        };
        let (mapped, _) = job_spec(&job, &map, Path::new("/state")).expect("mapped");
        assert_eq!(
            mapped.transfer,
            Some(TransferPlan {
                kind: TransferKind::Move,
                to: farm_san.join("day1/a.mxf"),
                hashes: vec![HashKind::Xxh64, HashKind::Md5],
                mhl_root: Some(farm_san.join("day1")),
            })
        );
    }

    #[test]
    fn arguments_map_by_whole_folders_only() {
        let pairs = vec![(PathBuf::from("/mnt/shots"), PathBuf::from("/farm/shots"))];
        let arg = |s: &str| OsString::from(s);
        assert_eq!(
            map_arg(&arg("/mnt/shots/a.tif"), &pairs),
            arg("/farm/shots/a.tif")
        );
        assert_eq!(
            map_arg(&arg("-i=/mnt/shots/a.tif"), &pairs),
            arg("-i=/farm/shots/a.tif")
        );
        assert_eq!(map_arg(&arg("/mnt/shots"), &pairs), arg("/farm/shots"));
        assert_eq!(
            map_arg(&arg("/mnt/shots2/a.tif"), &pairs),
            arg("/mnt/shots2/a.tif")
        );
        assert_eq!(map_arg(&arg("-y"), &pairs), arg("-y"));
        assert_eq!(
            map_arg(&arg("--lut=/luts/mnt/shots/x.cube"), &pairs),
            arg("--lut=/luts/mnt/shots/x.cube"),
            "a folder's text in the middle of another path is not a path"
        );
        // A deeper root mounted at the same place keeps its paths, whatever a shorter one maps.
        let nested = vec![
            (
                PathBuf::from("/mnt/shots/show"),
                PathBuf::from("/mnt/shots/show"),
            ),
            (PathBuf::from("/mnt/shots"), PathBuf::from("/net/shots")),
        ];
        assert_eq!(
            map_arg(&arg("/mnt/shots/show/.a.srjob1-1.mov"), &nested),
            arg("/mnt/shots/show/.a.srjob1-1.mov")
        );
        assert_eq!(
            map_arg(&arg("/mnt/shots/b.tif"), &nested),
            arg("/net/shots/b.tif")
        );
        let raw = OsString::from_vec(b"/mnt/shots/\xff\xfe a.tif".to_vec());
        assert_eq!(
            map_arg(&raw, &pairs).as_bytes(),
            b"/farm/shots/\xff\xfe a.tif",
            "bytes that are not UTF-8 survive"
        );
    }
}
