//! The executor a node holds: each attempt goes to the executor its plan names (local process
//! groups, or the Slurm farm for `executor: slurm`), and every question is asked of both.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::exec::executor::{AttemptId, Executor, Reattach, Report};
use crate::exec::fenced_publish::QueueFactory;
use crate::exec::local::LocalExecutor;
use crate::exec::provenance::Provenance;
use crate::exec::runner::JobSpec;
use crate::exec::slurm::{FIRST_ATTEMPT, SlurmExecutor};
use crate::store::queue::Abandoned;

/// Local jobs and farm jobs, behind one [`Executor`].
pub struct ByPlan {
    local: LocalExecutor,
    /// Started with the first farm job: a node without one runs no farm threads.
    slurm: std::sync::OnceLock<SlurmExecutor>,
    provenance: Arc<Provenance>,
    store: Option<QueueFactory>,
    done: Sender<Report>,
}

impl ByPlan {
    /// A node's executor: `jobs` local slots; farm jobs as their plans ask.
    pub fn new(
        jobs: usize,
        provenance: Arc<Provenance>,
        store: Option<QueueFactory>,
        done: Sender<Report>,
    ) -> ByPlan {
        ByPlan {
            local: LocalExecutor::new(jobs, provenance.clone(), store.clone(), done.clone()),
            slurm: std::sync::OnceLock::new(),
            provenance,
            store,
            done,
        }
    }

    fn slurm(&self) -> &SlurmExecutor {
        self.slurm.get_or_init(|| {
            SlurmExecutor::new(
                crate::exec::slurm::client::Client::default(),
                self.provenance.clone(),
                self.store.clone(),
                self.done.clone(),
            )
        })
    }
}

impl Executor for ByPlan {
    fn submit(&self, spec: JobSpec) {
        if spec.plan.slurm.is_some() {
            self.slurm().submit(spec);
        } else {
            self.local.submit(spec);
        }
    }

    fn set_limit(&mut self, limit: usize) {
        self.local.set_limit(limit);
    }

    fn waiting(&self) -> usize {
        self.local.waiting() + self.slurm.get().map_or(0, Executor::waiting)
    }

    fn running(&self) -> usize {
        self.local.running() + self.slurm.get().map_or(0, Executor::running)
    }

    fn drain_queued(&self) -> Vec<JobSpec> {
        let mut specs = self.local.drain_queued();
        if let Some(slurm) = self.slurm.get() {
            specs.extend(slurm.drain_queued());
        }
        specs
    }

    fn cancel(&self, attempt: AttemptId) {
        if attempt >= FIRST_ATTEMPT {
            if let Some(slurm) = self.slurm.get() {
                slurm.cancel(attempt);
            }
        } else {
            self.local.cancel(attempt);
        }
    }

    fn cancel_running(&self, kill_after: Duration) {
        self.local.cancel_running(kill_after);
        if let Some(slurm) = self.slurm.get() {
            slurm.cancel_running(kill_after);
        }
    }

    fn leave_running(&self) -> usize {
        self.slurm.get().map_or(0, Executor::leave_running)
    }

    fn reattach(&self, job: &Abandoned) -> Reattach {
        match self.local.reattach(job) {
            Reattach::NotMine => self.slurm().reattach(job),
            done => done,
        }
    }

    fn shutdown(self: Box<Self>) {
        let ByPlan { local, slurm, .. } = *self;
        Box::new(local).shutdown();
        if let Some(slurm) = slurm.into_inner() {
            Box::new(slurm).shutdown();
        }
    }
}
