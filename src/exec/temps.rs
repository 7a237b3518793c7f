//! Temp outputs named after their claim, so that none outlives a crash.
//!
//! A job's attempt writes its product under `.name.srjob<ID>-<TOKEN>.ext` (its claim's token),
//! not under the name planned before the job had an id. The store knows every claimed job's id,
//! last token and final path, so after a crash the next start can name every temp output the
//! job's attempts may have made, recorded or not: a converter orphaned before its start was
//! recorded is found by that name on its command line and killed, and the file is removed. A
//! user's own file never has such a name, and no live job does: the store has one daemon.
//! A `copy:`/`move:` temp (`.name.srcopy<ID>-<TOKEN>.ext`, beside a destination the store does
//! not record) is not swept here: the job's next attempt removes those its killed attempts left,
//! by their lock ([`crate::deliver::copy::TempFile`]), and never a live attempt's.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::deliver::ale;
use crate::deliver::publish::{claim_tag, temp_beside};
use crate::exec::runner::{JobSpec, replace_all};
use crate::store::queue::Abandoned;

/// Renames a claimed job's temp output after its claim, in its argv too (every occurrence of
/// the previous temp path in every argument: `{out}` may sit inside a longer one).
pub fn bind_claim(spec: &mut JobSpec) {
    let (Some(claim), Some(output)) = (spec.claim, spec.plan.output.as_mut()) else {
        return;
    };
    let Some(temp) = temp_beside(&output.final_path, &claim_tag(claim.id, claim.token)) else {
        return;
    };
    let old = std::mem::replace(&mut output.temp_path, temp.clone());
    if old == temp {
        return;
    }
    for argv in &mut spec.plan.steps {
        for arg in argv.iter_mut() {
            *arg = replace_all(arg, old.as_os_str().as_bytes(), temp.as_os_str().as_bytes());
        }
    }
}

/// Every temp output the attempts of an abandoned job may have written: one per claim token.
fn temps_of(job: &Abandoned) -> Vec<PathBuf> {
    let mut temps: Vec<PathBuf> = job.temp_output.iter().cloned().collect();
    if let Some(output) = &job.output {
        temps.extend(
            (1..=job.token).filter_map(|token| temp_beside(output, &claim_tag(job.id, token))),
        );
    }
    // An attempt of a rule with `ale:` also wrote its ALE beside its temp output.
    let ales: Vec<PathBuf> = temps.iter().filter_map(|t| ale::temp_beside(t)).collect();
    temps.extend(ales);
    temps.dedup();
    temps
}

/// After a crash, before anything runs: kills converters still writing an abandoned job's temp
/// output (their group was not recorded, or they left it), then removes every such temp file.
/// Logs each; returns how many files were removed.
pub fn sweep(abandoned: &[Abandoned]) -> usize {
    let temps: Vec<(i64, PathBuf)> = abandoned
        .iter()
        .flat_map(|job| temps_of(job).into_iter().map(move |t| (job.id, t)))
        .collect();
    let names: Vec<Vec<u8>> = temps
        .iter()
        .filter_map(|(_, t)| t.file_name().map(|n| n.as_bytes().to_vec()))
        .collect();
    for pid in crate::os::process::kill_mentioning(&names) {
        tracing::warn!(
            pid,
            "killed a converter orphaned by the previous daemon's end (it was writing a temp output)"
        );
    }
    let mut removed = 0;
    for (job, temp) in &temps {
        if remove(temp) {
            removed += 1;
            tracing::info!(job, path = %temp.display(), "removed an orphaned temp output");
        }
    }
    removed
}

fn remove(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an orphaned temp output");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::publish::OutputPaths;
    use crate::store::queue::Claim;

    #[test]
    fn a_claimed_job_writes_under_its_claims_name_everywhere_out_was_bound() {
        let planned = PathBuf::from("/s/out/.a.sr99-1.mov");
        let mut spec = JobSpec {
            id: "99-1".into(),
            rule: "r".into(),
            path: "/s/a.tif".into(),
            plan: crate::exec::plan::JobPlan {
                steps: vec![vec![
                    "ffmpeg".into(),
                    "-o".into(),
                    planned.clone().into(),
                    format!("--log={}.txt", planned.display()).into(),
                ]],
                output: Some(OutputPaths {
                    final_path: "/s/out/a.mov".into(),
                    temp_path: planned,
                    ale: None,
                }),
                ..Default::default()
            },
            allowed_roots: vec!["/s".into()],
            log_path: "/l".into(),
            attempt: 1,
            claim: Some(Claim {
                id: 7,
                token: 3,
                attempt: 1,
            }),
        };
        bind_claim(&mut spec);
        let temp = PathBuf::from("/s/out/.a.srjob7-3.mov");
        assert_eq!(spec.plan.output.as_ref().map(|o| &o.temp_path), Some(&temp));
        assert_eq!(spec.plan.steps[0][2], temp.as_os_str());
        assert_eq!(spec.plan.steps[0][3], "--log=/s/out/.a.srjob7-3.mov.txt");
        // A retry is claimed again: the name follows the new token.
        spec.claim = Some(Claim {
            id: 7,
            token: 4,
            attempt: 2,
        });
        bind_claim(&mut spec);
        assert_eq!(spec.plan.steps[0][2], "/s/out/.a.srjob7-4.mov");
    }

    #[test]
    fn the_sweep_removes_every_attempts_temp_and_nothing_else() {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("a.mov");
        let mine: Vec<PathBuf> = (1..=2)
            .map(|t| temp_beside(&out, &claim_tag(5, t)).expect("name"))
            .collect();
        let other_job = temp_beside(&out, &claim_tag(6, 1)).expect("name");
        let users = dir.path().join(".a.mov.swp");
        for path in mine.iter().chain([&other_job, &users]) {
            std::fs::write(path, b"x").expect("write");
        }
        let job = Abandoned {
            id: 5,
            rule: "r".into(),
            run: None,
            temp_output: None,
            output: Some(out),
            token: 2,
            published: false,
        };
        assert_eq!(sweep(&[job]), 2);
        assert!(mine.iter().all(|p| !p.exists()));
        assert!(other_job.exists() && users.exists());
    }

    #[test]
    fn the_sweep_removes_an_attempts_ale_too() {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("a.mxf");
        let temp = temp_beside(&out, &claim_tag(5, 1)).expect("name");
        let ale = ale::temp_beside(&temp).expect("name");
        assert_eq!(ale, dir.path().join(".a.srjob5-1.mxf.ale"));
        std::fs::write(&ale, b"Heading").expect("write");
        let job = Abandoned {
            id: 5,
            rule: "r".into(),
            run: None,
            temp_output: None,
            output: Some(out),
            token: 1,
            published: false,
        };
        assert_eq!(sweep(&[job]), 1);
        assert!(!ale.exists());
    }
}
