//! A notice held until the store recorded the end it tells of, and the rule for telling it:
//! the same on a watcher and a worker, so a job's end is told once, by the node whose end the
//! store took.

use std::sync::Arc;

use crate::exec::notifier::{Notice, Notifier};
use crate::rules::{NotifyEvent, NotifyTarget};
use crate::store::queue::Answer;

/// A notice and the targets that want it, held until the store recorded the end it tells of:
/// an attempt whose end is refused (its claim was lost) tells nothing, and the node that holds
/// the claim tells the job's end once.
#[derive(Debug)]
pub struct Telling {
    notice: Notice,
    targets: Vec<Arc<NotifyTarget>>,
}

impl Telling {
    /// A notice for `targets`.
    pub fn new(notice: Notice, targets: Vec<Arc<NotifyTarget>>) -> Telling {
        Telling { notice, targets }
    }

    /// Hands it to the notifier.
    pub fn send(self, notifier: &Notifier) {
        notifier.send(self.notice, &self.targets);
    }

    /// Whether it tells of a user's cancel (`failed: cancelled`): still true once the store
    /// answered the end with the cancel.
    pub fn is_cancel(&self) -> bool {
        self.notice.event == NotifyEvent::Failed.as_str()
            && self.notice.reason.as_deref() == Some("cancelled")
    }
}

/// Tells an attempt's `notify:` targets of its end once the store answered the end's record,
/// the same on a watcher and a worker: all of them when the store took it; only a user's
/// cancel when the job was cancelled meanwhile (it ended cancelled, as told); none when the
/// end was refused (the claim was lost: the node that holds it now tells the job's end, once).
pub(crate) fn tell_after_end(tellings: Vec<Telling>, answer: &Answer, notifier: &Notifier) {
    match answer {
        Answer::Ok => tellings.into_iter().for_each(|t| t.send(notifier)),
        Answer::Cancelled => tellings
            .into_iter()
            .filter(Telling::is_cancel)
            .for_each(|t| t.send(notifier)),
        refused if !tellings.is_empty() => {
            tracing::info!(
                store_said = refused.word(),
                "this attempt's end was refused (its claim was lost): its notify targets are not told"
            );
        }
        _ => {}
    }
}
