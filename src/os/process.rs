//! Process groups that outlive the daemon: identifying a job's group so that a later daemon (after
//! a crash) or the `cancel` command can kill it, without ever killing a stranger.
//!
//! A group id alone is not enough: ids are reused, and after a reboot every one of them may name
//! someone else's processes. A [`GroupId`] also records the boot and the start time of the group's
//! leader; only processes of that boot, in that group, started no earlier than the leader, are ours.

use std::os::unix::ffi::OsStrExt;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Enough to recognise a job's process group later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupId {
    /// The process group id (= the leader's pid).
    pub pgid: i32,
    /// The leader's start time, in clock ticks since boot (`/proc/PID/stat` field 22).
    pub leader_start: u64,
    /// `/proc/sys/kernel/random/boot_id` when the group was started.
    pub boot_id: String,
}

impl GroupId {
    /// Identifies the group led by `pgid`, which must be alive.
    pub fn of(pgid: i32) -> Option<GroupId> {
        Some(GroupId {
            pgid,
            leader_start: stat(pgid)?.start,
            boot_id: boot_id()?,
        })
    }

    /// The live processes of this group (zombies excluded), after checking it is still ours.
    pub fn live_members(&self) -> Vec<i32> {
        if boot_id().as_deref() != Some(self.boot_id.as_str()) {
            return Vec::new();
        }
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
            .filter_map(|pid| stat(pid).map(|s| (pid, s)))
            .filter(|(_, s)| s.pgrp == self.pgid && s.start >= self.leader_start && s.state != 'Z')
            .map(|(pid, _)| pid)
            .collect()
    }

    /// SIGKILLs every live member; returns how many were signalled.
    pub fn kill(&self) -> usize {
        self.signal(Signal::SIGKILL)
    }

    /// Sends `signal` to every live member; returns how many were signalled.
    pub fn signal(&self, signal: Signal) -> usize {
        self.live_members()
            .into_iter()
            .filter(|&pid| kill(Pid::from_raw(pid), signal).is_ok())
            .count()
    }
}

/// SIGKILLs every live process of this user whose command line has an argument containing one
/// of `needles` (whole group when the process leads one, as each job step does), and returns
/// their ids. For converters orphaned before their group was recorded: their `{out}` argument
/// names a temp output only they write, through `/proc/<daemon>/fd/…` of the daemon that died;
/// an argument through a live process's `/proc` entry belongs to another daemon (another
/// show's store may use the same job ids and names) and is spared. Never signals this process.
pub fn kill_mentioning(needles: &[Vec<u8>]) -> Vec<i32> {
    if needles.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| pid != me)
    {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let mentions = cmdline.split(|&b| b == 0).any(|arg| {
            needles
                .iter()
                .any(|n| !n.is_empty() && arg.windows(n.len()).any(|w| w == n.as_slice()))
                && !through_a_live_process(arg)
        });
        if !mentions || !owned_by_me(pid) {
            continue;
        }
        let Some(stat) = stat(pid).filter(|s| s.state != 'Z') else {
            continue;
        };
        let signalled = if stat.pgrp == pid {
            nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL)
        } else {
            kill(Pid::from_raw(pid), Signal::SIGKILL)
        };
        if signalled.is_ok() {
            killed.push(pid);
        }
    }
    killed
}

/// Whether `arg` reaches a file through `/proc/<pid>/…` of a process that is alive.
fn through_a_live_process(arg: &[u8]) -> bool {
    let Some(rest) = arg.strip_prefix(b"/proc/") else {
        return false;
    };
    let digits: Vec<u8> = rest
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    !digits.is_empty()
        && std::path::Path::new("/proc")
            .join(std::ffi::OsStr::from_bytes(&digits))
            .exists()
}

/// Whether process `pid` runs as this process's effective user.
fn owned_by_me(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let uid = |path: &str| std::fs::metadata(path).map(|m| m.uid()).ok();
    uid(&format!("/proc/{pid}")).is_some_and(|theirs| Some(theirs) == uid("/proc/self"))
}

struct Stat {
    state: char,
    pgrp: i32,
    start: u64,
}

/// Fields of `/proc/PID/stat`; the command name may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) ... starttime(22).
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Whether the child `pid` (started by us, not yet reaped) ends within `wait`: its pidfd turns
/// readable when it exits, and nothing is reaped. False while it runs, and on kernels without
/// pidfds (before 5.3), where callers treat it as still running.
pub fn ends_within(pid: i32, wait: std::time::Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let Some(fd) = Pid::from_raw(pid).and_then(|pid| pidfd_open(pid, PidfdFlags::empty()).ok())
    else {
        return false;
    };
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let timeout = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos().into(),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(ready) => return ready > 0,
            Err(rustix::io::Errno::INTR) if !left.is_zero() => continue,
            Err(_) => return false,
        }
    }
}

/// This boot's id, read once: it cannot change while we run.
fn boot_id() -> Option<String> {
    static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn a_group_is_found_while_alive_and_killed() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep runs");
        let pid = child.id() as i32;
        let group = GroupId::of(pid).expect("alive");
        assert_eq!(group.live_members(), vec![pid]);
        assert_eq!(group.kill(), 1);
        let _ = child.wait();
        assert!(group.live_members().is_empty());
    }

    #[test]
    fn a_quick_child_ends_within_the_wait_and_a_slow_one_does_not() {
        let mut quick = std::process::Command::new("true")
            .spawn()
            .expect("true runs");
        assert!(ends_within(
            quick.id() as i32,
            std::time::Duration::from_secs(5)
        ));
        // Not reaped by the wait: the child is still ours to wait for.
        assert!(quick.wait().expect("reaped here").success());
        let mut slow = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        assert!(!ends_within(
            slow.id() as i32,
            std::time::Duration::from_millis(20)
        ));
        let _ = slow.kill();
        let _ = slow.wait();
    }

    #[test]
    fn another_boot_is_never_ours() {
        let group = GroupId {
            pgid: std::process::id() as i32,
            leader_start: 0,
            boot_id: "not-this-boot".into(),
        };
        assert!(group.live_members().is_empty());
    }

    #[test]
    fn a_reused_group_id_with_a_younger_leader_is_not_ours() {
        let me = std::process::id() as i32;
        let mut group = GroupId::of(me).expect("we are alive");
        group.leader_start += 1_000_000_000;
        assert!(group.live_members().is_empty());
    }
}
