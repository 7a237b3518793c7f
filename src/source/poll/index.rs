//! What the poller remembers of the tree: per folder, its stamp (what changes when its entries
//! do) and its sorted listing, packed so a million files cost tens of megabytes.
//!
//! A listing keeps every entry's name and inode, ignored names included: a file renamed from
//! an ignored temp name (`a.exr.tmp` → `a.exr`) is recognised by its inode. Files' sizes and
//! times are not kept: only files not yet complete are watched that closely (in `pass`).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

/// What changes when a folder's entries are added, removed or renamed: its mtime and ctime;
/// its inode tells a folder replaced by another of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    /// Device: a change means another file system is mounted there now.
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
        }
    }

    /// Whether the folder's entries may have changed (the device is left out: a remounted
    /// share gets a new one while its folders stay as they were).
    pub fn same_entries(&self, other: &Stamp) -> bool {
        (self.ino, self.mtime_ns, self.ctime_ns) == (other.ino, other.mtime_ns, other.ctime_ns)
    }
}

/// What an entry is, for the poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A regular file.
    File,
    /// A folder the poller watches: its id in [`Folders`].
    Dir(u32),
    /// A folder not entered (ignored, or below a `recursive: false` root).
    SkippedDir,
    /// Anything else (symlink, fifo, socket): never reported, as the other sources do.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// End of the name in `Listing::names`; it starts where the previous one ends.
    end: u32,
    kind: Kind,
    ino: u64,
}

/// A folder's entries, sorted by name bytes, names packed in one buffer.
#[derive(Debug, Default)]
pub(super) struct Listing {
    names: Vec<u8>,
    entries: Vec<Entry>,
}

impl Listing {
    /// A listing of `(name, inode, kind)`, which must be sorted by name bytes.
    pub fn from_sorted(items: &[(OsString, u64, Kind)]) -> Listing {
        let mut listing = Listing {
            names: Vec::with_capacity(items.iter().map(|i| i.0.len()).sum()),
            entries: Vec::with_capacity(items.len()),
        };
        for (name, ino, kind) in items {
            listing.names.extend_from_slice(name.as_bytes());
            listing.entries.push(Entry {
                end: u32::try_from(listing.names.len()).unwrap_or(u32::MAX),
                kind: *kind,
                ino: *ino,
            });
        }
        listing
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry: name, inode, kind.
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, u64, Kind)> + '_ {
        self.entries.iter().enumerate().map(move |(i, e)| {
            let start = if i == 0 { 0 } else { self.entries[i - 1].end };
            let name = &self.names[start as usize..e.end as usize];
            (OsStr::from_bytes(name), e.ino, e.kind)
        })
    }

    /// Heap bytes held, for the memory figure.
    pub fn heap_bytes(&self) -> usize {
        self.names.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}

/// One watched folder.
#[derive(Debug)]
pub(super) struct Folder {
    /// Index of its watch root in the whole configuration.
    pub root: usize,
    /// Path relative to the root (empty for the root itself).
    pub rel: PathBuf,
    /// The folder above, `None` for a root.
    pub parent: Option<u32>,
    /// As last listed; `None` until listed (it is then listed on its next look).
    pub stamp: Option<Stamp>,
    pub listing: Listing,
    /// When its entries last changed: it is looked at every `hot` interval for a while after.
    pub changed_at: Option<Instant>,
    /// When to look at it next.
    pub next_check: Instant,
    /// Its last look failed (logged once, until it recovers).
    pub failing: bool,
    /// Listed at start-up (or first listed since a start that could not list it): its files
    /// are the initial scan's, which the engine compares with the store.
    pub initial: bool,
}

/// Every folder, by id; ids of removed folders are reused.
#[derive(Debug, Default)]
pub(super) struct Folders {
    slots: Vec<Option<Folder>>,
    free: Vec<u32>,
}

impl Folders {
    pub fn insert(&mut self, folder: Folder) -> u32 {
        match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(folder);
                id
            }
            None => {
                self.slots.push(Some(folder));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    pub fn remove(&mut self, id: u32) -> Option<Folder> {
        let folder = self.slots.get_mut(id as usize)?.take();
        if folder.is_some() {
            self.free.push(id);
        }
        folder
    }

    pub fn get(&self, id: u32) -> Option<&Folder> {
        self.slots.get(id as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Folder> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    /// Every folder with its id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Folder)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (i as u32, f)))
    }

    /// Every folder, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Folder> + '_ {
        self.slots.iter_mut().flatten()
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Heap bytes held by the index, for the memory figure.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<Folder>>()
            + self
                .iter()
                .map(|(_, f)| f.listing.heap_bytes() + f.rel.capacity())
                .sum::<usize>()
    }
}

/// The state of one watch root.
#[derive(Debug)]
pub(super) struct RootState {
    /// Index in the whole configuration.
    pub(super) index: usize,
    /// The root's folder, once it was first listed.
    pub(super) top: Option<u32>,
    /// The `statfs` magic of the file system the root was on (0: not known yet).
    pub(super) magic: u64,
    /// The root's device when last seen well.
    pub(super) dev: Option<u64>,
    /// Reported lost; looked at every `hot` interval for its return.
    pub(super) lost: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_gives_back_its_names_inodes_and_kinds() {
        let items = vec![
            (OsString::from("a.exr"), 7, Kind::File),
            (OsString::from("b dir"), 8, Kind::Dir(3)),
            (
                OsString::from_vec_lossless(b"c\xff\n".to_vec()),
                9,
                Kind::Other,
            ),
        ];
        let listing = Listing::from_sorted(&items);
        let back: Vec<(OsString, u64, Kind)> = listing
            .iter()
            .map(|(n, i, k)| (n.to_os_string(), i, k))
            .collect();
        assert_eq!(back, items);
        assert_eq!(listing.len(), 3);
        assert!(std::mem::size_of::<Entry>() <= 24);
    }

    trait FromVec {
        fn from_vec_lossless(bytes: Vec<u8>) -> OsString;
    }
    impl FromVec for OsString {
        fn from_vec_lossless(bytes: Vec<u8>) -> OsString {
            use std::os::unix::ffi::OsStringExt;
            OsString::from_vec(bytes)
        }
    }
}
