//! Which machine this is, as its mount facts need it: two render nodes cloned from one image
//! share device names (`/dev/sda1`, `overlay`), so a local disk's name says nothing of whose
//! disk it is. `/etc/machine-id` names the installation; without one, the boot id names this
//! boot (a machine that reboots then looks like another, which only costs a `--map`).
//!
//! Containers and VMs cloned from one image often share `/etc/machine-id` too; an anonymous
//! file system (tmpfs, overlay) is then told apart by its device number and the boot id.

use std::path::Path;

/// The installation's id.
const MACHINE_ID: &str = "/etc/machine-id";
/// The id of this boot, always there on Linux.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// This machine's id (`machine:<id>` or `boot:<id>`), none when neither file can be read.
pub fn current() -> Option<String> {
    read(Path::new(MACHINE_ID))
        .map(|id| format!("machine:{id}"))
        .or_else(|| read(Path::new(BOOT_ID)).map(|id| format!("boot:{id}")))
}

/// The id of this boot: a file system without a disk (tmpfs, overlay) lives no longer than it,
/// and its device number is only unique within it. None when it cannot be read.
pub fn boot() -> Option<String> {
    read(Path::new(BOOT_ID))
}

/// The file's first line, trimmed, when it holds one.
fn read(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let id = text.lines().next()?.trim();
    (!id.is_empty() && id != "uninitialized").then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_an_id_that_does_not_change() {
        let id = current().expect("machine-id or boot id");
        assert!(
            id.starts_with("machine:") || id.starts_with("boot:"),
            "{id}"
        );
        assert_eq!(current(), Some(id));
        let boot = boot().expect("boot id");
        assert_eq!(boot.len(), 36, "{boot}");
    }
}
