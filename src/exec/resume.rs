//! The next attempt of a job an earlier attempt published for: what it may take from that
//! attempt instead of running the job's commands again (the daemon died in between).

use std::fs::File;
use std::path::Path;

use crate::deliver::copy::{Transfer, TransferKind, TransferPlan};
use crate::deliver::publish::OutputPaths;
use crate::exec::runner::{JobHooks, JobSpec, Outcome, PublishingHook, note, transfer_tag};
use crate::os::version::FileVersion;
use crate::store::queue::Published;

/// The outcome of an attempt that resumes from what an earlier attempt published, or `None`
/// when it must run as a first attempt would.
pub(super) fn published(
    spec: &JobSpec,
    output: &OutputPaths,
    log: &mut File,
    hooks: &mut dyn JobHooks,
) -> Option<Outcome> {
    let before = hooks.published_before()?;
    let product = FileVersion::of(&output.final_path);
    // With an ALE the attempt before may have died before the sheet's rename: everything
    // runs again rather than deliver a product without its sheet.
    if output.ale.is_none() && product.is_some_and(|now| now.is_same_as(&before.product)) {
        return Some(deliver_published(spec, &output.final_path, log, hooks));
    }
    if product.is_none()
        && let Some(plan) = &spec.transfer
        && moved_before(plan, &before)
    {
        note(
            log,
            format!(
                "== {} is the move an earlier attempt of this job made; nothing is run again",
                plan.to.display()
            ),
        );
        return Some(Outcome::Succeeded {
            published: Some(output.final_path.clone()),
        });
    }
    None
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
    if let Some(plan) = &spec.transfer {
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

/// Whether an earlier attempt's `move:` is done: the destination it recorded is in place (the
/// product is gone from its path, which a move removes last, after its rename and its MHL).
fn moved_before(plan: &TransferPlan, before: &Published) -> bool {
    plan.kind == TransferKind::Move
        && before
            .delivered
            .zip(FileVersion::of(&plan.to))
            .is_some_and(|(recorded, now)| now.is_same_as(&recorded))
}
