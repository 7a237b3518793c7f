//! The one plan of a job: what `route` builds from a rule and a file, what the store keeps with
//! the job, and what any node runs, watcher or worker. Its argv, product, verify checks,
//! copy or move, sequence view, ALE, timeout, retries, notify targets and OpenLineage receiver
//! are one serialisable value; a new key of a rule becomes a field here and a step that acts on
//! it, nothing else.
//!
//! Paths and arguments are written as escaped text (`%` and bytes that are not UTF-8 as `%XX`),
//! so a non-UTF-8 file name survives the store. A worker on another machine rewrites every path
//! in one place, [`JobPlan::map_paths`]; where the trees are mounted travels beside the plan in
//! the store's envelope (`engine::worker::plan`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deliver::copy::TransferPlan;
use crate::deliver::publish::OutputPaths;
use crate::deliver::verify::Expectations;
use crate::media::sequence::View;

mod lineage;
mod notify;
pub use lineage::PortableLineage;
pub use notify::PortableNotify;

/// Everything a node needs to run one job, besides its input and claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPlan {
    /// Each step's argv.
    #[serde(with = "crate::os::path_text::argvs")]
    pub steps: Vec<Vec<OsString>>,
    /// The product, when the rule declares `output:` (with its ALE, for `ale:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputPaths>,
    /// The symlink view of a sequence ffmpeg cannot read in place, made before the first
    /// step and removed after the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<View>,
    /// What the product must be before it is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Expectations>,
    /// The rule's `copy:`/`move:`: of the published product when the job has an output, else
    /// of the triggering file itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferPlan>,
    /// Longest the job may run.
    #[serde(
        default,
        rename = "timeout_ms",
        with = "opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Attempts after the first.
    #[serde(default)]
    pub retries: u32,
    /// Wait before the first retry (doubling after).
    #[serde(default, rename = "backoff_ms", with = "millis")]
    pub backoff: Duration,
    /// Whether ffmpeg steps report their progress (`progress: ffmpeg`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progress: bool,
    /// Whether the node that publishes the product also makes its poster frame (`thumbnail:
    /// true`), kept in its state folder for the dashboard.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thumbnail: bool,
    /// Frames the input holds, when known (a sequence's length, a probed count): how far an
    /// ffmpeg step's progress has to go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_frames: Option<u64>,
    /// The rule's `notify:` targets: the node that runs the job tells them of its end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<PortableNotify>,
    /// `executor: slurm`: its steps run as a task of the studio's Slurm cluster, asking for
    /// this; the node that submitted it verifies and publishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::rules::farm::SlurmRequest>,
    /// The rule's declared `inputs:`, expanded: read by the steps besides the matched file.
    /// The node that runs the job records the version of each it found (its lineage).
    #[serde(
        default,
        with = "crate::os::path_text::list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub inputs: Vec<PathBuf>,
    /// The rule's [`work_hash`](crate::rules::Rule::work_hash) when it was planned: recorded
    /// with the run, so a later change of what the rule makes shows its products stale.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub work_hash: String,
    /// The file's `lineage.openlineage`: the node that runs the job sends its run events there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openlineage: Option<PortableLineage>,
}

impl JobPlan {
    /// The plan with every path rewritten by `path` (where a worker mounts the watcher's
    /// trees) and every argument by `arg` (paths inside arguments). The one place that knows
    /// which fields hold paths.
    ///
    /// # Errors
    /// The first path `path` cannot map.
    pub fn map_paths(
        self,
        path: impl Fn(&Path) -> Result<PathBuf, String>,
        arg: impl Fn(&OsString) -> OsString,
    ) -> Result<JobPlan, String> {
        let output = match self.output {
            Some(o) => Some(OutputPaths {
                final_path: path(&o.final_path)?,
                temp_path: path(&o.temp_path)?,
                ale: match o.ale {
                    Some(mut sheet) => {
                        sheet.final_path = path(&sheet.final_path)?;
                        Some(sheet)
                    }
                    None => None,
                },
            }),
            None => None,
        };
        let view = match self.view {
            Some(v) => Some(View {
                dir: path(&v.dir)?,
                links: v
                    .links
                    .iter()
                    .map(|(l, t)| Ok((path(l)?, path(t)?)))
                    .collect::<Result<_, String>>()?,
            }),
            None => None,
        };
        let transfer = match self.transfer {
            Some(t) => Some(TransferPlan {
                to: path(&t.to)?,
                mhl_root: t.mhl_root.as_deref().map(&path).transpose()?,
                ..t
            }),
            None => None,
        };
        // The spool is where every farm node and submitter mount it; a worker maps it when it
        // lies in a tree it maps, and takes it as written otherwise.
        let slurm = self.slurm.map(|mut request| {
            if let Ok(mapped) = path(&request.spool) {
                request.spool = mapped;
            }
            request
        });
        let inputs = self
            .inputs
            .iter()
            .map(|p| path(p))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(JobPlan {
            slurm,
            inputs,
            steps: self
                .steps
                .iter()
                .map(|argv| argv.iter().map(&arg).collect())
                .collect(),
            output,
            view,
            transfer,
            ..self
        })
    }
}

/// A duration as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// An optional duration as whole milliseconds.
mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::ale::AleSheet;
    use crate::deliver::copy::TransferKind;
    use crate::deliver::hash::HashKind;
    use std::os::unix::ffi::OsStringExt;

    fn odd(name: &[u8]) -> PathBuf {
        PathBuf::from(OsString::from_vec(name.to_vec()))
    }

    fn full() -> JobPlan {
        JobPlan {
            steps: vec![vec![
                "ffmpeg".into(),
                OsString::from_vec(b"/s/a b'$(x)\"\n\xff%.tif".to_vec()),
            ]],
            output: Some(OutputPaths {
                final_path: odd(b"/s/out/a\xff.mov"),
                temp_path: "/s/out/.a.sr1.mov".into(),
                ale: Some(AleSheet {
                    final_path: "/s/out/a.ale".into(),
                    fps: "24".into(),
                    video_format: "1080".into(),
                    clips: Vec::new(),
                }),
            }),
            view: Some(View {
                dir: "/state/views/1".into(),
                links: vec![(
                    "/state/views/1/f.0001.tif".into(),
                    odd(b"/s/f%\xfe.1001.tif"),
                )],
            }),
            verify: Some(Expectations {
                checks: vec![("frames".into(), "48".into())],
                perfs_per_frame: Some(4),
                stock_codes: Some((1, 2)),
                decode: true,
            }),
            transfer: Some(TransferPlan {
                kind: TransferKind::Move,
                to: "/san/a.mov".into(),
                hashes: vec![HashKind::Xxh64, HashKind::Md5],
                mhl_root: Some("/san".into()),
            }),
            timeout: Some(Duration::from_millis(90_500)),
            retries: 2,
            backoff: Duration::from_secs(10),
            progress: true,
            thumbnail: true,
            total_frames: Some(48),
            notify: Vec::new(),
            slurm: Some(crate::rules::farm::SlurmRequest {
                partition: Some("render".into()),
                time_minutes: Some(30),
                args: vec!["--constraint=avx2".into()],
                spool: "/farm/spool".into(),
                poll_ms: 2000,
                ..Default::default()
            }),
            inputs: vec![odd(b"/s/grade/a \xff$(x).cube")],
            work_hash: "0123456789abcdef".into(),
            openlineage: Some(PortableLineage {
                url: "http://marquez:5000/api/v1/lineage".into(),
                namespace: "shotrouter://show".into(),
            }),
        }
    }

    #[test]
    fn a_plan_survives_its_text_byte_for_byte() {
        let plan = full();
        let text = serde_json::to_string(&plan).expect("serialises");
        let back: JobPlan = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, plan);
        assert!(text.contains("%FF"), "non-UTF-8 bytes escaped: {text}");
        let minimal: JobPlan = serde_json::from_str(r#"{"steps": [["true"]]}"#).expect("minimal");
        assert_eq!(minimal.steps, vec![vec![OsString::from("true")]]);
    }

    #[test]
    fn mapping_reaches_every_path_and_argument() {
        let mapped = full()
            .map_paths(
                |p| Ok(Path::new("/mnt").join(p.strip_prefix("/").expect("absolute"))),
                |a| {
                    let mut a = a.clone();
                    a.push("!");
                    a
                },
            )
            .expect("maps");
        let text = serde_json::to_string(&mapped).expect("text");
        assert!(mapped.inputs.iter().all(|p| p.starts_with("/mnt")));
        for field in ["final_path", "temp_path", "dir", "to", "mhl_root"] {
            assert!(
                text.contains(&format!("\"{field}\":\"/mnt/")),
                "{field}: {text}"
            );
        }
        let view = mapped.view.expect("view");
        assert!(
            view.links
                .iter()
                .all(|(l, t)| l.starts_with("/mnt") && t.starts_with("/mnt"))
        );
        assert!(
            mapped.steps[0]
                .iter()
                .all(|a| a.to_string_lossy().ends_with('!'))
        );
        let refused = full().map_paths(|_| Err("not here".into()), Clone::clone);
        assert_eq!(refused, Err("not here".to_string()));
    }
}
