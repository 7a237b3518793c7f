//! `shotrouter conform`: a sequence review from the latest published version of each shot of a
//! cut. For each item of the cut's latest revision in record order it picks the product a rule
//! published for the item's shot (`pick`), finds which shot frame the product starts at
//! (`product`), plans which product frame each record frame shows and the one ffmpeg run that
//! cuts and joins them (`plan`, pure), runs it into a temp file, checks the result like any
//! product (`verify`), writes the `.otio` of what was used (`otio`) and only then renames both
//! into place: a failed conform leaves no movie behind.

mod otio;
mod pick;
mod plan;
mod product;
mod verify;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::app::cli::CutPlace;
use crate::app::cut::{find, open_store, which};
use crate::app::ops::{json, print, runtime};
use crate::error::Error;
use crate::media::probe::probe;
use crate::media::timecode::{Counting, Rate};
use crate::store::Status;
use crate::store::history::JobFilter;

pub use pick::Pick;
use pick::{Product, file_name, latest};
pub use plan::Codec;
use plan::{LayoutError, Source, Uncovered, ffmpeg_args, layout, segments};
use product::{first_frame, probe_product_file};

/// Why a conform stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConformError {
    /// Shots of the cut for which the rule published nothing.
    #[error(
        "no published product of rule `{rule}` for {}; run the rule on them first (`shotrouter jobs --rule {rule}` shows what it made)",
        listed(shots)
    )]
    Missing {
        /// The rule.
        rule: String,
        /// The shots.
        shots: Vec<String>,
    },
    /// Products that do not hold the frames the cut shows.
    #[error("the picked products do not hold the frames the cut shows: {}", uncovered(.0))]
    Uncovered(Vec<(Uncovered, String)>),
    /// The cut's record timeline cannot be laid out.
    #[error("{}", layout_text(.0))]
    Layout(LayoutError),
    /// A product cannot be used.
    #[error("product `{path}`: {problem}")]
    Product {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// ffmpeg failed.
    #[error("ffmpeg failed ({status}): {stderr}")]
    Ffmpeg {
        /// Its exit status.
        status: String,
        /// What it printed.
        stderr: String,
    },
    /// The conformed movie is not what the cut asks for.
    #[error("the conformed movie failed verification, nothing was written to `{}`: {}", .output.display(), .differences.join("; "))]
    Verify {
        /// The movie asked for.
        output: PathBuf,
        /// What differs.
        differences: Vec<String>,
    },
    /// A file could not be written or renamed.
    #[error("cannot write `{}`: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS's error.
        source: std::io::Error,
    },
}

fn listed(shots: &[String]) -> String {
    let names: Vec<String> = shots.iter().map(|s| format!("`{s}`")).collect();
    format!(
        "{} shot{} {}",
        shots.len(),
        if shots.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

fn uncovered(list: &[(Uncovered, String)]) -> String {
    list.iter()
        .map(|(u, path)| {
            format!(
                "`{}` needs frames {}-{}, `{path}` holds {}-{}",
                u.shot, u.needed.0, u.needed.1, u.holds.0, u.holds.1
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn layout_text(e: &LayoutError) -> String {
    match e {
        LayoutError::Timecode { label, reason } => {
            format!("stored record timecode `{label}` does not read: {reason}")
        }
        LayoutError::Overlap { first, second } => format!(
            "events {first} and {second} play at the same time (several video tracks); conform plays one track, flatten the cut first"
        ),
        LayoutError::Empty => "the cut shows no frames".into(),
    }
}

/// What `shotrouter conform` was asked.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The cut (default: the only one).
    pub name: Option<&'a str>,
    /// The rule whose products are conformed.
    pub rule: &'a str,
    /// The movie to write.
    pub output: &'a Path,
    /// Where the `.otio` goes; `None`: beside `output`.
    pub otio: Option<&'a Path>,
    /// Which product of a shot.
    pub pick: Pick,
    /// The movie's codec.
    pub codec: Codec,
    /// Print JSON.
    pub as_json: bool,
}

/// One picked product, with what the report and the `.otio` say about it.
struct Picked {
    shot: String,
    product: Product,
    source: Source,
    provenance: otio::Provenance,
    from: product::FirstFrom,
}

/// `shotrouter conform`.
///
/// # Errors
/// `--pick approved`, no such cut or rule (exit 2); a missing or short product, ffmpeg failing,
/// a movie that fails verification (exit 1, nothing written).
pub fn conform(request: &Request<'_>, place: &CutPlace) -> Result<ExitCode, Error> {
    if request.pick == Pick::Approved {
        return Err(Error::Config(
            "`--pick approved` is not supported yet: the store keeps no approvals; use `--pick latest`".into(),
        ));
    }
    let rules = place.rules.as_deref().map(crate::rules::load).transpose()?;
    let naming = rules
        .as_ref()
        .and_then(|r| r.cuts.clone())
        .unwrap_or_default()
        .naming;
    let spec = rules
        .as_ref()
        .and_then(|r| r.rules.iter().find(|x| x.name == request.rule))
        .and_then(|r| r.timecode.clone());
    let cuts = open_store(place)?;
    let name = which(&*cuts, request.name)?;
    let revision = find(&*cuts, &name, None)?;
    let rate = Rate::parse(&revision.fps).map_err(Error::Runtime)?;
    let drop = revision
        .present()
        .flat_map(|s| &s.items)
        .any(|i| i.record_in.contains(';'));
    let counting = Counting::new(rate, drop).map_err(Error::Runtime)?;
    let (uses, start, end) =
        layout(&revision, counting).map_err(|e| Error::failed(ConformError::Layout(e)))?;

    let history = crate::app::ops::open(&place.state().location()?)?;
    let jobs = history
        .jobs(&JobFilter {
            status: Some(Status::Done),
            rule: Some(request.rule),
            limit: 1_000_000,
            ..JobFilter::default()
        })
        .map_err(runtime)?;
    if jobs.is_empty()
        && !history
            .rule_names()
            .map_err(runtime)?
            .iter()
            .any(|r| r == request.rule)
    {
        return Err(Error::Config(format!(
            "rule `{}` has no jobs in the store; `shotrouter jobs` lists the rules that do",
            request.rule
        )));
    }
    let mut by_shot: BTreeMap<String, Vec<Product>> = BTreeMap::new();
    for job in jobs {
        let Some(output) = job.output else { continue };
        let shot = naming
            .shot_in(&file_name(&output))
            .or_else(|| naming.shot_in(&file_name(&job.path)));
        if let Some(shot) = shot {
            by_shot.entry(shot).or_default().push(Product {
                path: output,
                job: job.id,
                published_at: job.finished_at.unwrap_or(job.created_at),
            });
        }
    }
    let mut order: Vec<&str> = Vec::new();
    for u in &uses {
        if !order.contains(&u.shot.as_str()) {
            order.push(&u.shot);
        }
    }
    let missing: Vec<String> = order
        .iter()
        .filter(|s| by_shot.get(**s).and_then(|p| latest(p)).is_none())
        .map(|s| s.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::failed(ConformError::Missing {
            rule: request.rule.to_string(),
            shots: missing,
        }));
    }
    let wanted: Vec<(String, Product, i64)> = order
        .iter()
        .map(|shot| {
            let product = latest(&by_shot[*shot]).expect("checked above").clone();
            let head_in = revision
                .present()
                .find(|s| s.shot == *shot)
                .map_or(1001, |s| s.head_in);
            (shot.to_string(), product, head_in)
        })
        .collect();
    let picked = probe_all(wanted, rate, spec.as_ref())?;
    let sources: Vec<Source> = picked.iter().map(|p| p.source.clone()).collect();
    let index_of = |shot: &str| {
        picked
            .iter()
            .position(|p| p.shot == shot)
            .expect("every shot was picked")
    };
    let segments = segments(&uses, start, end, &sources, index_of).map_err(|list| {
        Error::failed(ConformError::Uncovered(
            list.into_iter()
                .map(|u| {
                    let path = picked[index_of(&u.shot)].source.path.clone();
                    (u, path)
                })
                .collect(),
        ))
    })?;

    debug_assert_eq!(
        segments.iter().map(plan::Segment::frames).sum::<i64>(),
        end - start
    );
    let timecode = counting.label(start);
    let output = crate::rules::absolute(request.output);
    let otio_path = request
        .otio
        .map_or_else(|| output.with_extension("otio"), crate::rules::absolute);
    let temp = temp_beside(&output);
    let args = ffmpeg_args(
        &segments,
        &sources,
        counting,
        &timecode,
        request.codec,
        &temp,
    );
    let result = run_ffmpeg(&args).and_then(|()| {
        let probed = probe(&temp, "the conformed movie").map_err(|problem| {
            Error::failed(ConformError::Product {
                path: temp.display().to_string(),
                problem,
            })
        })?;
        let expected = verify::Expected {
            frames: (end - start) as u64,
            timecode: timecode.clone(),
            rate,
        };
        let differences = verify::differences(&probed, &expected);
        if differences.is_empty() {
            Ok(())
        } else {
            Err(Error::failed(ConformError::Verify {
                output: output.clone(),
                differences,
            }))
        }
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    let provenance: Vec<otio::Provenance> = picked.iter().map(|p| p.provenance.clone()).collect();
    let timeline = otio::timeline(&name, rate, start, &segments, &sources, &provenance);
    let otio_temp = temp_beside(&otio_path);
    let written = serde_json::to_vec_pretty(&timeline)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&otio_temp, bytes))
        .and_then(|()| std::fs::rename(&otio_temp, &otio_path))
        .map_err(|source| ConformError::Write {
            path: otio_path.clone(),
            source,
        })
        .and_then(|()| {
            std::fs::rename(&temp, &output).map_err(|source| ConformError::Write {
                path: output.clone(),
                source,
            })
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        let _ = std::fs::remove_file(&otio_temp);
        return Err(Error::failed(e));
    }
    let report = Report {
        cut: name,
        revision: revision.revision,
        output: output.display().to_string(),
        otio: otio_path.display().to_string(),
        frames: end - start,
        timecode,
        shots: picked
            .iter()
            .map(|p| ShotReport {
                shot: p.shot.clone(),
                product: p.product.path.clone(),
                version: p.product.version(),
                job: p.product.job,
                first_frame: p.source.first,
                first_frame_from: p.from.as_str(),
            })
            .collect(),
    };
    if request.as_json {
        return json(&report);
    }
    print(&report.text())
}

/// What a conform made, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
struct Report {
    cut: String,
    revision: i64,
    output: String,
    otio: String,
    frames: i64,
    timecode: String,
    shots: Vec<ShotReport>,
}

#[derive(Debug, serde::Serialize)]
struct ShotReport {
    shot: String,
    product: String,
    version: Option<u32>,
    job: i64,
    first_frame: i64,
    first_frame_from: &'static str,
}

impl Report {
    fn text(&self) -> String {
        let mut out = format!(
            "conformed cut `{}` revision {}: {} frames from {}\n  {}\n  {}\n",
            crate::app::cut::shown(&self.cut),
            self.revision,
            self.frames,
            self.timecode,
            self.output,
            self.otio
        );
        for s in &self.shots {
            out.push_str(&format!(
                "  {}  v{}  job {}  first frame {} ({})  {}\n",
                s.shot,
                s.version
                    .map_or_else(|| "-".to_string(), |v| format!("{v:03}")),
                s.job,
                s.first_frame,
                s.first_frame_from,
                s.product
            ));
        }
        out
    }
}

/// A hidden temp name beside `path` (same folder, so the rename is atomic).
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "conform".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.conform-{}", std::process::id()))
}

/// Most products read at once: a header read in-process is cheap, but one that falls back to
/// ffprobe costs about 0.09 s of mostly start-up, so a 100-shot cut read one by one would spend
/// seconds before ffmpeg starts.
const PROBES_AT_ONCE: usize = 8;

/// [`probe_product`] of each `(shot, product, head_in)`, several at once, in order.
fn probe_all(
    wanted: Vec<(String, Product, i64)>,
    rate: Rate,
    spec: Option<&crate::media::timecode::TimecodeSpec>,
) -> Result<Vec<Picked>, Error> {
    let per_thread = wanted.len().div_ceil(PROBES_AT_ONCE).max(1);
    let mut chunks: Vec<Vec<(String, Product, i64)>> = Vec::new();
    let mut rest = wanted.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(per_thread).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(shot, product, head_in)| {
                            probe_product(&shot, product, rate, spec, head_in)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            for picked in handle.join().expect("a probe thread panicked") {
                out.push(picked?);
            }
        }
        Ok(out)
    })
}

fn probe_product(
    shot: &str,
    product: Product,
    rate: Rate,
    spec: Option<&crate::media::timecode::TimecodeSpec>,
    head_in: i64,
) -> Result<Picked, Error> {
    let bad = |problem: String| {
        Error::failed(ConformError::Product {
            path: product.path.clone(),
            problem,
        })
    };
    let probed = probe_product_file(Path::new(&product.path)).map_err(&bad)?;
    if probed.fps != Some(rate) {
        return Err(bad(format!(
            "its rate is {}, the cut's is {rate}; conform does not change rates",
            probed
                .fps
                .map_or_else(|| "unknown".to_string(), |r| r.to_string())
        )));
    }
    let frames = probed
        .frames
        .ok_or_else(|| bad("ffprobe gives no frame count".into()))?;
    let (first, media_start, from) =
        first_frame(probed.timecode.as_deref(), rate, spec, head_in).map_err(&bad)?;
    Ok(Picked {
        shot: shot.to_string(),
        source: Source {
            path: product.path.clone(),
            first,
            frames: frames as i64,
            width: probed.width.unwrap_or(0),
            height: probed.height.unwrap_or(0),
        },
        provenance: otio::Provenance {
            shot: shot.to_string(),
            version: product.version(),
            job: product.job,
            media_start,
        },
        product,
        from,
    })
}

fn run_ffmpeg(args: &[std::ffi::OsString]) -> Result<(), Error> {
    let output = crate::os::program::command(OsStr::new("ffmpeg"), args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| {
            Error::failed(ConformError::Ffmpeg {
                status: "not started".into(),
                stderr: format!(
                    "cannot run ffmpeg: {e}; install it (Debian: `apt install ffmpeg`)"
                ),
            })
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::failed(ConformError::Ffmpeg {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        }))
    }
}
