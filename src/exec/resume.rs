//! The next attempt of a job an earlier attempt published for: what it may take from that
//! attempt instead of running the job's commands again (the daemon died in between).

use crate::deliver::copy::{TransferKind, TransferPlan};
use crate::deliver::publish::OutputPaths;
use crate::os::version::FileVersion;
use crate::store::queue::Published;

/// What the next attempt of a job may take from an earlier attempt that published for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resume {
    /// Nothing: it runs as a first attempt would.
    RunAgain,
    /// The product the store recorded is in place: only its `copy:`/`move:` runs (the earlier
    /// attempt may have died before finishing it).
    DeliverProduct,
    /// The earlier attempt's `move:` is done: nothing runs again.
    AlreadyMoved,
}

/// Decides from what the store recorded (`before`) and what is in place now.
pub(super) fn resume(
    before: Option<&Published>,
    output: &OutputPaths,
    transfer: Option<&TransferPlan>,
) -> Resume {
    let Some(before) = before else {
        return Resume::RunAgain;
    };
    let product = FileVersion::of(&output.final_path);
    // With an ALE the attempt before may have died before the sheet's rename: everything
    // runs again rather than deliver a product without its sheet.
    if output.ale.is_none() && product.is_some_and(|now| now.is_same_as(&before.product)) {
        return Resume::DeliverProduct;
    }
    if product.is_none() && transfer.is_some_and(|plan| moved_before(plan, before)) {
        return Resume::AlreadyMoved;
    }
    Resume::RunAgain
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
