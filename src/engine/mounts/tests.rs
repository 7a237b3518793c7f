use super::*;
use crate::os::path_text::escape;

fn fact(path: &str, point: &str, depth: u32, fs_type: &str, source: &str) -> MountFact {
    MountFact {
        path: path.into(),
        mount_point: point.into(),
        depth,
        fs_type: fs_type.into(),
        source: source.into(),
        root: None,
        machine: None,
        dev: None,
        boot: None,
    }
}

/// The fact as this release's watcher writes it: with its mounted folder and machine.
fn on(mut fact: MountFact, root: &str, machine: &str) -> MountFact {
    fact.root = Some(root.into());
    fact.machine = Some(machine.into());
    fact
}

/// One mount of a constructed table.
fn mount(root: &str, point: &str, fs_type: &str, source: &str) -> Mount {
    let line = format!("40 1 0:60 {root} {point} rw - {fs_type} {source} rw\n");
    MountTable::parse(line.as_bytes()).mounts.remove(0)
}

/// [`judge`] of folder `/srv/shows/x`, `depth` below mount `here`, on machine `m1`, boot `b1`.
fn judged(there: &MountFact, here: &Mount, depth: u32) -> Result<(), Mismatch> {
    let host = Host {
        machine: Some("machine:m1".into()),
        boot: Some("b1".into()),
    };
    judge(there, here, Path::new("/srv/shows/x"), depth, &host)
}

/// The fact as this release's watcher writes it, with the device and boot too.
fn with_dev(mut fact: MountFact, dev: &str, boot: &str) -> MountFact {
    fact.dev = Some(dev.into());
    fact.boot = Some(boot.into());
    fact
}

/// One mount of a constructed table, on device `dev`.
fn mount_on(dev: &str, root: &str, point: &str, fs_type: &str, source: &str) -> Mount {
    let line = format!("40 1 {dev} {root} {point} rw - {fs_type} {source} rw\n");
    MountTable::parse(line.as_bytes()).mounts.remove(0)
}

#[test]
fn a_folder_is_used_where_the_same_kind_of_mount_holds_it() {
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("san");
    std::fs::create_dir(&folder).expect("folder");
    let canonical = folder.canonicalize().expect("canonical");
    let local = LocalMounts::read([folder.as_path()]);
    let here = local
        .table
        .as_ref()
        .expect("mountinfo")
        .containing(&canonical)
        .expect("a mount")
        .clone();
    let depth = depth_under(&canonical, &here.point);
    let text = folder.display().to_string();
    let point = here.point.display().to_string();
    let source = escape(Path::new(&here.source));
    let root = escape(&here.root);
    let machine = local.host.machine.clone().expect("machine id");
    let ok = |f: &MountFact| check(&folder, Some(f), &local).is_ok();
    let same = fact(&text, &point, depth, &here.fs_type, &source);

    // The same machine: the same mount, an empty folder included.
    assert!(ok(&same));
    assert!(ok(&on(same.clone(), &root, &machine)));
    // As this release's watcher gathers it (device and boot included), on this machine.
    let table = MountTable::read().expect("mountinfo");
    let gathered = WatcherMounts::gather(std::slice::from_ref(&folder), &table, &Host::current());
    assert!(ok(&gathered.facts[0]), "{gathered:?}");
    let mut other_dev = gathered.facts[0].clone();
    other_dev.dev = Some("4095:4095".into());
    assert!(!ok(&other_dev));
    // The watcher had it on a share (or its own disk) mounted deeper: not mounted here.
    let deeper = canonical.display().to_string();
    assert!(!ok(&fact(&text, &deeper, 0, "nfs4", "srv:/san")));
    assert!(!ok(&fact(&text, &deeper, 0, "tmpfs", "tmpfs")));
    // Another local disk of the same type.
    assert!(!ok(&fact(
        &text,
        &point,
        depth,
        &here.fs_type,
        "/dev/other"
    )));
    let err = check(
        &folder,
        Some(&fact(&text, &text, 0, "nfs4", "srv:/san")),
        &local,
    )
    .expect_err("declined");
    assert!(
        err.to_string().contains(&format!(
            "is on nfs4 `srv:/san` mounted at `{text}` on the watcher, but here on {}",
            here.fs_type
        )),
        "{err}"
    );
    // A folder not made yet, here as on the watcher: the job makes it.
    let later = dir.path().join("new show/delivery");
    let text = later.display().to_string();
    let later_fact = fact(&text, &point, depth + 1, &here.fs_type, &source);
    assert!(check(&later, Some(&later_fact), &local).is_ok());
    let shallower = fact(&text, &point, depth, &here.fs_type, &source);
    assert!(check(&later, Some(&shallower), &local).is_err());
    // A plan without facts keeps the old rule: an empty folder is not used, nor a
    // missing one.
    assert!(matches!(
        check(&folder, None, &local),
        Err(Unmapped::Empty { .. })
    ));
    assert!(matches!(
        check(&later, None, &local),
        Err(Unmapped::Missing { .. })
    ));
    std::fs::write(folder.join("x"), b"x").expect("file");
    assert!(check(&folder, None, &local).is_ok());
}

#[test]
fn a_share_here_at_least_as_deep_holds_the_watchers_folder() {
    let here = mount("/", "/srv/shows", "nfs4", "srv:/export/shows");
    // The watcher's file server's own disk, or the same share.
    assert_eq!(
        judged(&fact("", "/srv", 2, "xfs", "/dev/sdb"), &here, 1),
        Ok(())
    );
    assert_eq!(
        judged(
            &fact("", "/srv/shows", 1, "nfs", "srv:/export/shows"),
            &here,
            1
        ),
        Ok(())
    );
    // The share here is the watcher's mounted deeper: the watcher's path runs through it.
    assert_eq!(
        judged(
            &fact("", "/srv", 2, "nfs4", "srv.studio.lan:/export"),
            &here,
            1
        ),
        Ok(())
    );
}

#[test]
fn a_share_mounted_higher_than_the_watchers_mount_is_declined() {
    // A diskless node: its `/` is a share, and `/srv/shows` an empty folder on it where
    // the watcher mounts its delivery volume.
    let root = mount("/", "/", "nfs4", "boot:/nodes/n7");
    for there in [
        fact("", "/srv/shows", 1, "xfs", "/dev/sdb"),
        fact("", "/srv/shows", 1, "nfs4", "srv:/shows"),
    ] {
        assert_eq!(
            judged(&there, &root, 3),
            Err(Mismatch::Higher { depth: 3, there: 1 }),
            "{there:?}"
        );
    }
    // Even as deep: a share as the root file system is the node's own, not the watcher's
    // disk.
    assert_eq!(
        judged(&fact("", "/", 3, "ext4", "/dev/sda1"), &root, 3),
        Err(Mismatch::RootShare)
    );
    // An automounted `/net` share holding the folder higher up.
    let net = mount("/", "/srv", "nfs", "filer:/vol/srv");
    assert!(judged(&fact("", "/srv/shows", 1, "xfs", "/dev/sdb"), &net, 2).is_err());
    let err = Unmapped::OtherMount {
        path: "/srv/shows/x".into(),
        there: Box::new(fact("", "/srv/shows", 1, "xfs", "/dev/sdb")),
        here: Box::new(root),
        why: Mismatch::Higher { depth: 3, there: 1 },
    };
    assert!(
        err.to_string()
            .contains("at depth 3 under it here, 1 on the watcher"),
        "{err}"
    );
}

#[test]
fn another_server_or_export_is_not_the_watchers_share() {
    let showa = fact("", "/srv/shows", 1, "nfs4", "srv1:/showA");
    let scratch = mount("/", "/srv/shows", "nfs4", "srv2:/scratch");
    assert_eq!(
        judged(&showa, &scratch, 1),
        Err(Mismatch::OtherShare {
            here: "srv2:/scratch/x".into(),
            there: "srv1:/showA/x".into()
        })
    );
    let other_server = mount("/", "/srv/shows", "nfs4", "srv2:/showA");
    assert!(judged(&showa, &other_server, 1).is_err());
    let other_export = mount("/", "/srv/shows", "nfs4", "srv1:/showB");
    assert!(judged(&showa, &other_export, 1).is_err());
    // The same export under the server's long name, or through SMB's form.
    assert_eq!(
        judged(
            &showa,
            &mount("/", "/srv/shows", "nfs", "SRV1.studio.lan:/showA/"),
            1
        ),
        Ok(())
    );
    // A bind mount of an NFS share's folder: NFS names that folder in the source.
    assert_eq!(
        judged(&showa, &mount("/x", "/srv/shows", "nfs4", "srv1:/showA"), 1),
        Ok(()),
        "the root is in the source"
    );
    let fuse = fact("", "/srv/shows", 1, "fuse.sshfs", "u@h:/d/x");
    assert!(judged(&fuse, &mount("/x", "/srv/shows", "fuse.sshfs", "u@h:/d"), 1).is_ok());
    let bindfs = fact("", "/srv/shows", 1, "fuse", "/backing");
    assert!(judged(&bindfs, &mount("/x", "/srv/shows", "fuse", "/backing"), 1).is_err());
    let smb = fact("", "/srv/shows", 1, "cifs", "//nas/shows");
    assert_eq!(
        judged(&smb, &mount("/", "/srv/shows", "cifs", "//nas/shows"), 1),
        Ok(())
    );
    assert!(judged(&smb, &mount("/", "/srv/shows", "cifs", "//nas/other"), 1).is_err());
    // Two full names are compared whole: the same short name at another site is another server.
    let site_a = fact("", "/srv/shows", 1, "nfs4", "nas01.site-a.lan:/showA");
    assert!(
        judged(
            &site_a,
            &mount("/", "/srv/shows", "nfs4", "nas01.site-b.lan:/showA"),
            1
        )
        .is_err()
    );
    for same in ["NAS01.Site-A.lan:/showA", "nas01:/showA"] {
        assert_eq!(
            judged(&site_a, &mount("/", "/srv/shows", "nfs4", same), 1),
            Ok(()),
            "{same}"
        );
    }
    // Addresses are compared as written.
    let by_address = fact("", "/srv/shows", 1, "nfs4", "10.0.0.1:/showA");
    assert!(
        judged(
            &by_address,
            &mount("/", "/srv/shows", "nfs4", "10.0.0.2:/showA"),
            1
        )
        .is_err()
    );
}

#[test]
fn a_local_disk_is_the_watchers_only_on_the_watchers_machine() {
    // Cloned render nodes: the same device name on every one.
    let here = mount("/", "/", "ext4", "/dev/sda1");
    let there = on(fact("", "/", 3, "ext4", "/dev/sda1"), "/", "machine:m2");
    assert_eq!(judged(&there, &here, 3), Err(Mismatch::OtherMachine));
    let mine = on(fact("", "/", 3, "ext4", "/dev/sda1"), "/", "machine:m1");
    assert_eq!(judged(&mine, &here, 3), Ok(()));
    // A plan of an older watcher names no machine: judged as before.
    assert_eq!(
        judged(&fact("", "/", 3, "ext4", "/dev/sda1"), &here, 3),
        Ok(())
    );
    // Two containers of one machine, each with its own folder bind-mounted at `/srv`.
    let volume = mount("/data/b", "/srv", "ext4", "/dev/sda1");
    let there = on(
        fact("", "/srv", 2, "ext4", "/dev/sda1"),
        "/data/a",
        "machine:m1",
    );
    assert_eq!(
        judged(&there, &volume, 2),
        Err(Mismatch::OtherFolder {
            there: "/data/a".into()
        })
    );
    let same = on(
        fact("", "/srv", 2, "ext4", "/dev/sda1"),
        "/data/b",
        "machine:m1",
    );
    assert_eq!(judged(&same, &volume, 2), Ok(()));
}

#[test]
fn clones_sharing_a_machine_id_are_told_apart_by_device_and_boot() {
    // Containers of one image: the same machine id, and every tmpfs is named `tmpfs`.
    let tmpfs = |dev: &str, boot: &str| {
        with_dev(
            on(fact("", "/srv", 2, "tmpfs", "tmpfs"), "/", "machine:m1"),
            dev,
            boot,
        )
    };
    let here = mount_on("0:60", "/", "/srv", "tmpfs", "tmpfs");
    assert_eq!(judged(&tmpfs("0:60", "b1"), &here, 2), Ok(()));
    assert_eq!(
        judged(&tmpfs("0:61", "b1"), &here, 2),
        Err(Mismatch::OtherDevice {
            here: "0:60".into(),
            there: "0:61".into()
        })
    );
    // The same number under another kernel (another VM of the image): another tmpfs.
    assert_eq!(
        judged(&tmpfs("0:60", "b2"), &here, 2),
        Err(Mismatch::OtherBoot)
    );
    let mut unknown = tmpfs("0:60", "b1");
    unknown.boot = None;
    assert_eq!(judged(&unknown, &here, 2), Err(Mismatch::OtherBoot));
    // A disk: the device number must match, the boot need not (a reboot keeps the disk).
    let disk = on(fact("", "/", 3, "ext4", "/dev/sda1"), "/", "machine:m1");
    let sda = mount_on("8:1", "/", "/", "ext4", "/dev/sda1");
    assert_eq!(
        judged(&with_dev(disk.clone(), "8:1", "b0"), &sda, 3),
        Ok(())
    );
    assert!(matches!(
        judged(&with_dev(disk.clone(), "8:17", "b1"), &sda, 3),
        Err(Mismatch::OtherDevice { .. })
    ));
    // Overlay roots of two containers: the same name and folder, another device.
    let overlay = with_dev(
        on(fact("", "/", 3, "overlay", "overlay"), "/", "machine:m1"),
        "0:52",
        "b1",
    );
    let other_root = mount_on("0:53", "/", "/", "overlay", "overlay");
    let err = judged(&overlay, &other_root, 3).expect_err("another container's root");
    assert!(err.to_string().contains("0:53"), "{err}");
    // A plan of an older watcher names no device: judged as before.
    assert_eq!(judged(&disk, &sda, 3), Ok(()));
    // Facts written by this release still read, and older plans' facts without the fields too.
    let text = serde_json::to_string(&with_dev(disk.clone(), "8:1", "b1")).expect("json");
    assert!(text.contains("\"dev\":\"8:1\""), "{text}");
    let old: MountFact = serde_json::from_str(
        r#"{"path":"/","mount_point":"/","depth":3,"fs_type":"ext4","source":"/dev/sda1"}"#,
    )
    .expect("an older plan's fact");
    assert_eq!(old.dev, None);
}
