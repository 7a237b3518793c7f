//! Runs one attempt of a job: its plan's steps one after another (each in a process group of
//! its own, `exec::step`), with the job's log, then its delivery steps (verify, publish, copy
//! or move), built from the plan in one place (`Delivery`).
//!
//! A failing, missing or hanging command is an [`Outcome`], never an error of the daemon;
//! deadlines and cancels are the [`Watchdog`]'s.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deliver::ale::{PublishAle, WriteAle};
use crate::deliver::copy::{Transfer, attempt_tag};
use crate::deliver::publish::{OutputPaths, Publish};
use crate::deliver::thumbnail::Thumbnail;
use crate::deliver::verify::Verify;
use crate::deliver::{DeliverError, DeliveryHooks, Product, Step, StepContext};
use crate::exec::progress;
use crate::exec::resume::{self, Resume};
use crate::exec::step::{StepResult, describe, exit_text, open_log, run_step};
use crate::os::quote::shell_quote;
use crate::os::version::FileVersion;

pub use crate::exec::hooks::JobHooks;
pub use crate::exec::watchdog::{JobControl, KILL_GRACE, Watchdog};

pub mod remote;

/// One attempt of a job: its plan, and where this attempt runs it.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Unique job id, used in the log and temp names.
    pub id: String,
    /// The rule's name.
    pub rule: String,
    /// The triggering file.
    pub path: PathBuf,
    /// What runs: argv, product, checks, copy, view, timeout (the job's one plan).
    pub plan: crate::exec::plan::JobPlan,
    /// Where outputs may be published.
    pub allowed_roots: Vec<PathBuf>,
    /// The job's log file.
    pub log_path: PathBuf,
    /// 1 for the first try.
    pub attempt: u32,
    /// The job's claim in the store (its fencing token), when jobs are recorded.
    pub claim: Option<crate::store::queue::Claim>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step exited 0 and the output, if any, was published.
    Succeeded {
        /// The published product.
        published: Option<PathBuf>,
    },
    /// The job failed; retrying may help.
    Failed(Failure),
    /// Stopped on request (shutdown or cancel).
    Cancelled,
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// A step exited non-zero or was killed by a signal.
    #[error("step {step} {status}")]
    Exit {
        /// 1-based step number.
        step: usize,
        /// `exited with status 1` or `killed by signal 9`.
        status: String,
    },
    /// A step ran longer than the rule's `timeout`.
    #[error(
        "step {step} timed out after {}; its process group was killed",
        humantime::format_duration(*limit)
    )]
    TimedOut {
        /// 1-based step number.
        step: usize,
        /// The timeout.
        limit: Duration,
    },
    /// A step's program could not be started.
    #[error("step {step}: cannot run `{program}`: {reason}")]
    Spawn {
        /// 1-based step number.
        step: usize,
        /// The program name.
        program: String,
        /// The OS's reason.
        reason: String,
    },
    /// The commands succeeded but the product could not be delivered (not written, not what
    /// `verify:` asks for, or not publishable).
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    /// The farm scheduler ended the attempt for a reason of its own (out of memory, cancelled
    /// there, a task that vanished): its words.
    #[error("{0}")]
    Farm(String),
    /// A sequence's view could not be made.
    #[error("cannot make the sequence view: {0}")]
    View(String),
    /// The log file could not be opened.
    #[error("cannot open job log `{}`: {reason}", path.display())]
    Log {
        /// The log path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Runs one attempt of a job to the end. `job` is a number unique among running jobs.
pub fn run(
    spec: &JobSpec,
    job: u64,
    control: &Arc<JobControl>,
    watchdog: &Watchdog,
    hooks: &mut dyn JobHooks,
) -> Outcome {
    if let Some(view) = &spec.plan.view
        && let Err(e) = view.create()
    {
        view.remove();
        return Outcome::Failed(Failure::View(format!("{}: {e}", view.dir.display())));
    }
    let outcome = run_attempt(spec, job, control, watchdog, hooks);
    if let Some(view) = &spec.plan.view {
        view.remove();
    }
    outcome
}

fn run_attempt(
    spec: &JobSpec,
    job: u64,
    control: &Arc<JobControl>,
    watchdog: &Watchdog,
    hooks: &mut dyn JobHooks,
) -> Outcome {
    let mut log = match open_log(&spec.log_path) {
        Ok(log) => log,
        Err(reason) => {
            return Outcome::Failed(Failure::Log {
                path: spec.log_path.clone(),
                reason,
            });
        }
    };
    note(
        &mut log,
        format!(
            "== job {} rule {} attempt {} file {}",
            spec.id,
            spec.rule,
            spec.attempt,
            spec.path.display()
        ),
    );
    // A `copy:`/`move:` without an output delivers the triggering file: no commands, no product.
    if spec.plan.output.is_none()
        && let Some(plan) = &spec.plan.transfer
    {
        return deliver_input(spec, plan, &mut log, hooks);
    }
    if let Some(output) = &spec.plan.output {
        let before = hooks.published_before();
        match resume::resume(before.as_ref(), output, spec.plan.transfer.as_ref()) {
            Resume::RunAgain => {}
            Resume::DeliverProduct => {
                return deliver_published(spec, &output.final_path, &mut log, hooks);
            }
            Resume::AlreadyMoved => {
                // What the killed attempt left beside the destination goes (its temp's lock).
                let to = spec.plan.transfer.as_ref().map(|plan| {
                    Transfer::planned(plan, spec.allowed_roots.clone(), transfer_tag(spec))
                        .remove_abandoned(&mut log);
                    plan.to.display().to_string()
                });
                note(
                    &mut log,
                    format!(
                        "== {} is the move an earlier attempt of this job made; nothing is run again",
                        to.unwrap_or_default()
                    ),
                );
                return Outcome::Succeeded {
                    published: Some(output.final_path.clone()),
                };
            }
        }
    }
    let mut delivery = spec
        .plan
        .output
        .as_ref()
        .map(|output| Delivery::new(spec, output));
    let mut steps_argv = std::borrow::Cow::Borrowed(&spec.plan.steps);
    if let Some(Delivery { product, steps }) = &mut delivery {
        for step in steps.iter() {
            if let Err(error) = step.prepare(product, &mut log) {
                tracing::debug!(job = %spec.id, step = step.name(), %error, "delivery step refused the job");
                return Outcome::Failed(error.into());
            }
        }
        // `{out}` reaches the checked folder through its handle, not by a path that could be
        // swapped for a symlink while the commands run.
        let via = product.temp_access();
        if via != product.temp_path {
            note(
                &mut log,
                format!(
                    "== {{out}} {} is written as {} (the checked folder's handle)",
                    product.temp_path.display(),
                    via.display()
                ),
            );
            let (from, to) = (product.temp_path.as_os_str(), via.as_os_str());
            steps_argv = std::borrow::Cow::Owned(
                spec.plan
                    .steps
                    .iter()
                    .map(|argv| {
                        argv.iter()
                            .map(|arg| replace_all(arg, from.as_bytes(), to.as_bytes()))
                            .collect()
                    })
                    .collect(),
            );
        }
    }
    let discard = |delivery: &Option<Delivery>| {
        if let Some(delivery) = delivery {
            delivery.product.discard();
        }
    };
    let deadline = spec.plan.timeout.map(|t| Instant::now() + t);
    let mut total_frames = spec.plan.total_frames;
    for (index, argv) in steps_argv.iter().enumerate() {
        let step = index + 1;
        let reports = spec.plan.progress && argv.first().is_some_and(|p| progress::is_ffmpeg(p));
        let with_progress;
        let (argv, tail) = match reports.then(|| hooks.progress_sink()).flatten() {
            Some(sink) => {
                if total_frames.is_none() {
                    total_frames = probe_frames(&spec.path);
                }
                let path = progress::path_for(&spec.log_path);
                with_progress = progress::with_progress_args(argv, &path);
                let tail = progress::Tail::start(path, total_frames, sink);
                (&with_progress, Some(tail))
            }
            None => (argv, None),
        };
        let display: Vec<String> = argv.iter().map(|a| shell_quote(a.as_bytes())).collect();
        note(&mut log, format!("$ {}", display.join(" ")));
        let result = run_step(argv, &log, deadline, job, control, watchdog, hooks);
        if let Some(tail) = tail {
            tail.finish();
        }
        note(&mut log, format!("== step {step}: {}", describe(&result)));
        let failure = match result {
            StepResult::Exited(status) if status.success() => continue,
            StepResult::Exited(status) => Failure::Exit {
                step,
                status: exit_text(status),
            },
            StepResult::TimedOut => Failure::TimedOut {
                step,
                limit: spec.plan.timeout.unwrap_or_default(),
            },
            StepResult::Cancelled => {
                discard(&delivery);
                return Outcome::Cancelled;
            }
            StepResult::SpawnFailed(reason) => Failure::Spawn {
                step,
                program: String::from_utf8_lossy(argv[0].as_bytes()).into_owned(),
                reason,
            },
        };
        discard(&delivery);
        return Outcome::Failed(failure);
    }
    match &mut delivery {
        Some(delivery) => {
            // Its steps were too quick to be reported started; its delivery (a verify, a copy
            // to the SAN) may not be: the job is running from here on, with no group alive.
            if !hooks.start_reported() && !hooks.group_started(0) {
                delivery.product.discard();
                return Outcome::Cancelled;
            }
            delivery.run(spec, &mut log, hooks)
        }
        None => Outcome::Succeeded { published: None },
    }
}

/// The input's frame count as ffprobe reads it from the container (no decoding: cheap), for a
/// progress total the plan did not know; `None` when ffprobe cannot say.
fn probe_frames(input: &Path) -> Option<u64> {
    let what = format!("the input `{}`", input.display());
    crate::media::probe::probe(input, &what).ok()?.frames
}

/// A job's product and the steps that deliver it once its commands have exited 0.
struct Delivery {
    product: Product,
    steps: Vec<Box<dyn Step>>,
}

impl Delivery {
    /// The steps in the order they run: verify (when the rule asks), the ALE's temp file (when
    /// asked), publish, the thumbnail (when asked), then the ALE's rename.
    fn new(spec: &JobSpec, output: &OutputPaths) -> Delivery {
        let mut steps: Vec<Box<dyn Step>> = Vec::new();
        if let Some(expected) = &spec.plan.verify {
            steps.push(Box::new(Verify {
                expected: expected.clone(),
            }));
        }
        if let Some(sheet) = &output.ale {
            steps.push(Box::new(WriteAle {
                sheet: sheet.clone(),
            }));
        }
        steps.push(Box::new(Publish {
            allowed_roots: spec.allowed_roots.clone(),
        }));
        // Right after publishing, before a `move:` takes the product away.
        if spec.plan.thumbnail
            && let Some(to) = thumbnail_path(spec)
        {
            steps.push(Box::new(Thumbnail {
                to,
                frames: spec.plan.total_frames,
            }));
        }
        if let Some(sheet) = &output.ale {
            steps.push(Box::new(PublishAle {
                final_path: sheet.final_path.clone(),
            }));
        }
        if let Some(plan) = &spec.plan.transfer {
            steps.push(Box::new(Transfer::planned(
                plan,
                spec.allowed_roots.clone(),
                transfer_tag(spec),
            )));
        }
        Delivery {
            product: Product::new(&spec.rule, output),
            steps,
        }
    }

    /// Runs the steps on the product, once the commands made it; the first refusal discards
    /// it and is the attempt's failure.
    fn run(&mut self, spec: &JobSpec, log: &mut File, hooks: &mut dyn JobHooks) -> Outcome {
        let mut hooks = PublishingHook(hooks);
        let mut cx = StepContext {
            log,
            hooks: &mut hooks,
        };
        for step in &self.steps {
            if let Err(error) = step.run(&mut self.product, &mut cx) {
                tracing::debug!(job = %spec.id, step = step.name(), %error, "delivery step failed");
                self.product.discard();
                return Outcome::Failed(error.into());
            }
        }
        Outcome::Succeeded {
            published: self.product.published.clone(),
        }
    }
}

/// Where this job's thumbnail goes: the `thumbs/` of the state folder that holds its log
/// (`STATE/logs/<rule>/<id>.log` on every node, watcher or worker).
fn thumbnail_path(spec: &JobSpec) -> Option<PathBuf> {
    let state_dir = spec.log_path.ancestors().nth(3)?;
    crate::deliver::thumbnail::path_in(state_dir, &spec.id)
}

/// Runs a rule's `copy:`/`move:` on the triggering file itself (the rule has no commands).
fn deliver_input(
    spec: &JobSpec,
    plan: &crate::deliver::copy::TransferPlan,
    log: &mut File,
    hooks: &mut dyn JobHooks,
) -> Outcome {
    let transfer = Transfer::planned(plan, spec.allowed_roots.clone(), transfer_tag(spec));
    let mut hooks = PublishingHook(hooks);
    match transfer.deliver(&spec.path, log, &mut hooks) {
        Ok(_) => Outcome::Succeeded {
            published: Some(plan.to.clone()),
        },
        Err(error) => {
            tracing::debug!(job = %spec.id, %error, "delivery failed");
            Outcome::Failed(error.into())
        }
    }
}

/// Delivers a product an earlier attempt of this job published (the version the store
/// recorded is the one in place): its commands are not run again, only its `copy:`/`move:`,
/// which that attempt may not have finished (the daemon died in between).
fn deliver_published(
    spec: &JobSpec,
    product: &Path,
    log: &mut File,
    hooks: &mut dyn JobHooks,
) -> Outcome {
    note(
        log,
        format!(
            "== {} is the product an earlier attempt of this job published; its commands are not run again",
            product.display()
        ),
    );
    if let Some(plan) = &spec.plan.transfer {
        let transfer = Transfer::planned(plan, spec.allowed_roots.clone(), transfer_tag(spec));
        let mut hooks = PublishingHook(hooks);
        if let Err(error) = transfer.deliver(product, log, &mut hooks) {
            tracing::debug!(job = %spec.id, %error, "delivery failed");
            return Outcome::Failed(error.into());
        }
    }
    Outcome::Succeeded {
        published: Some(product.to_path_buf()),
    }
}

/// The temp-name tag of a job's copy: one per claim, so an attempt still running after its claim
/// passed to another (a network partition) and the new attempt never share a temp file.
pub(super) fn transfer_tag(spec: &JobSpec) -> String {
    match spec.claim {
        Some(claim) => attempt_tag(&claim.id.to_string(), claim.token),
        None => attempt_tag(&spec.id, i64::from(spec.attempt)),
    }
}

/// Passes delivery's durable events on to the job's hooks.
pub(super) struct PublishingHook<'a>(pub(super) &'a mut dyn JobHooks);

impl DeliveryHooks for PublishingHook<'_> {
    fn publishing(&mut self, path: &Path, version: FileVersion) -> bool {
        self.0.publishing(path, version)
    }
}

/// Appends one line to the job log in a single write (an unbuffered `writeln!` would issue one
/// system call per formatting fragment).
pub(super) fn note(log: &mut File, mut line: String) {
    line.push('\n');
    let _ = log.write_all(line.as_bytes());
}

/// `text` with every `from` replaced by `to`.
pub(crate) fn replace_all(text: &OsString, from: &[u8], to: &[u8]) -> OsString {
    let bytes = text.as_bytes();
    if from.is_empty() || !bytes.windows(from.len()).any(|w| w == from) {
        return text.clone();
    }
    let mut out = Vec::with_capacity(bytes.len() + to.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at..].starts_with(from) {
            out.extend_from_slice(to);
            at += from.len();
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    OsString::from_vec(out)
}
