//! The one-node Slurm cluster the Slurm executor's tests run on (`helpers::slurm`): it comes up,
//! runs a job array to its end, and each task leaves its own output.

use std::time::{Duration, Instant};

use crate::helpers::slurm::Cluster;

/// The states a job does not leave.
const ENDED: [&str; 9] = [
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
];

/// `sbatch --array=0-2`: `squeue` shows the three tasks COMPLETED, and each log holds its task's
/// line.
#[test]
fn a_job_array_runs_to_completion_on_the_test_cluster() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let output = format!("--output={}/%A_%a.log", cluster.dir().display());
    let submitted = cluster.run(
        "sbatch",
        &[
            "--parsable",
            "--array=0-2",
            &output,
            "--wrap",
            "echo task $SLURM_ARRAY_TASK_ID",
        ],
    );
    let id = submitted.trim();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "`sbatch --parsable` printed {submitted:?}, not a job id"
    );
    let want: Vec<String> = (0..3)
        .map(|task| format!("{id}_{task}|COMPLETED"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let tasks = loop {
        let shown = cluster.run(
            "squeue",
            &[
                "-r",
                "--noheader",
                "--states=all",
                &format!("--jobs={id}"),
                "--format=%i|%T",
            ],
        );
        let mut tasks: Vec<String> = shown.lines().map(str::to_owned).collect();
        tasks.sort();
        let ended = tasks.len() == 3
            && tasks
                .iter()
                .all(|t| t.rsplit('|').next().is_some_and(|s| ENDED.contains(&s)));
        if ended || Instant::now() > deadline {
            break tasks;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(tasks, want, "the array's tasks\n{}", cluster.log_tail());
    for task in 0..3 {
        let log = cluster.dir().join(format!("{id}_{task}.log"));
        let text = std::fs::read_to_string(&log)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", log.display(), cluster.log_tail()));
        assert_eq!(text, format!("task {task}\n"), "{}", log.display());
    }
}
