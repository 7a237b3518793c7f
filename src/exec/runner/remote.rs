//! The parts of an attempt that stay on the node that claimed it when its steps run elsewhere
//! (a task on the farm). Before the submission: the job's log, the sequence view, the product's
//! folder made and checked (a stale temp removed), and an earlier attempt's publish looked up.
//! After the task's end: its output appended to the job's log, then the same delivery steps as
//! a local job (verify, publish with the claim checked, ALE, copy or move). The product is
//! opened through its checked folder only now: a folder handle cannot cross machines.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::{Delivery, Failure, JobHooks, JobSpec, Outcome, deliver_published, note};
use crate::deliver::copy::Transfer;
use crate::deliver::publish::open_output;
use crate::exec::resume::{self, Resume};
use crate::exec::step::open_log;

/// What to do with an attempt once its local part is ready.
#[derive(Debug)]
pub enum Prepared {
    /// Submit its steps: everything on this side is ready.
    Submit,
    /// Nothing to submit: the attempt ended here (a refused output folder, a product an earlier
    /// attempt already published).
    Ended(Outcome),
}

/// Readies an attempt whose steps will run elsewhere.
pub fn prepare(spec: &JobSpec, hooks: &mut dyn JobHooks) -> Prepared {
    let mut log = match open_log(&spec.log_path) {
        Ok(log) => log,
        Err(reason) => {
            return Prepared::Ended(Outcome::Failed(Failure::Log {
                path: spec.log_path.clone(),
                reason,
            }));
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
    if let Some(output) = &spec.plan.output {
        let before = hooks.published_before();
        match resume::resume(before.as_ref(), output, spec.plan.transfer.as_ref()) {
            Resume::RunAgain => {}
            Resume::DeliverProduct => {
                return Prepared::Ended(deliver_published(
                    spec,
                    &output.final_path,
                    &mut log,
                    hooks,
                ));
            }
            Resume::AlreadyMoved => {
                if let Some(plan) = &spec.plan.transfer {
                    Transfer::planned(plan, spec.allowed_roots.clone(), super::transfer_tag(spec))
                        .remove_abandoned(&mut log);
                }
                return Prepared::Ended(Outcome::Succeeded {
                    published: Some(output.final_path.clone()),
                });
            }
        }
        let mut delivery = Delivery::new(spec, output);
        for step in &delivery.steps {
            if let Err(error) = step.prepare(&mut delivery.product, &mut log) {
                return Prepared::Ended(Outcome::Failed(error.into()));
            }
        }
    }
    if let Some(view) = &spec.plan.view
        && let Err(e) = view.create()
    {
        view.remove();
        return Prepared::Ended(Outcome::Failed(Failure::View(format!(
            "{}: {e}",
            view.dir.display()
        ))));
    }
    Prepared::Submit
}

/// Finishes an attempt whose steps ran elsewhere and ended as `ended` (`Ok` when every step
/// exited 0); `task_log` is what the task printed, appended to the job's log.
pub fn finish(
    spec: &JobSpec,
    ended: Result<(), Outcome>,
    task_log: Option<&Path>,
    hooks: &mut dyn JobHooks,
) -> Outcome {
    if let Some(view) = &spec.plan.view {
        view.remove();
    }
    let mut log = match open_log(&spec.log_path) {
        Ok(log) => log,
        Err(reason) => {
            discard_temp(spec);
            return Outcome::Failed(Failure::Log {
                path: spec.log_path.clone(),
                reason,
            });
        }
    };
    if let Some(task_log) = task_log {
        append_task_log(&mut log, task_log);
    }
    if let Err(outcome) = ended {
        match &outcome {
            Outcome::Failed(failure) => note(&mut log, format!("== {failure}")),
            Outcome::Cancelled => note(&mut log, "== cancelled".to_string()),
            Outcome::Succeeded { .. } => {}
        }
        discard_temp(spec);
        return outcome;
    }
    let Some(output) = &spec.plan.output else {
        return Outcome::Succeeded { published: None };
    };
    let mut delivery = Delivery::new(spec, output);
    match open_output(&output.final_path, &spec.allowed_roots) {
        Ok(dir) => delivery.product.dir = Some(Arc::new(dir)),
        Err(reason) => {
            let error = crate::deliver::DeliverError::Publish(reason);
            note(&mut log, format!("== {error}"));
            discard_temp(spec);
            return Outcome::Failed(error.into());
        }
    }
    delivery.run(spec, &mut log, hooks)
}

/// Removes the temp product a task may have left (it failed, or was cancelled), through its
/// checked folder like every other temp.
fn discard_temp(spec: &JobSpec) {
    if let Some(output) = &spec.plan.output
        && let Ok(dir) = open_output(&output.final_path, &spec.allowed_roots)
    {
        let _ = dir.remove(output.temp_path.file_name().unwrap_or_default());
    }
}

/// Copies what the task printed into the job's log, between two marks.
fn append_task_log(log: &mut File, task_log: &Path) {
    match File::open(task_log) {
        Ok(mut from) => {
            note(
                log,
                format!("== output of the task ({})", task_log.display()),
            );
            if let Err(e) = std::io::copy(&mut from, log) {
                note(log, format!("== (cannot copy the rest: {e})"));
            }
            let _ = log.flush();
            note(log, "== end of the task's output".to_string());
        }
        Err(e) => note(
            log,
            format!(
                "== the task's output `{}` cannot be read: {e}",
                task_log.display()
            ),
        ),
    }
}
