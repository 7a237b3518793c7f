//! ASC MHL v2 histories: each verified delivery into a folder adds one generation (an `.mhl`
//! hash list naming the delivered file) to `<folder>/ascmhl/` and its C4 id to the chain file
//! `ascmhl_chain.xml`, in the format the ASC's reference tool (`ascmhl verify`) checks.
//!
//! Deliveries into one folder are serialised by an exclusive `flock` on `ascmhl/shotrouter.lock`
//! (across processes and machines that honour it), held from the check of the history through
//! the rename of the copy to the written chain: the generation numbers stay a sequence and the
//! chain never loses an entry. Each file is written under a hidden temp name, flushed and renamed.
//! A file already in the history is delivered again only with the same contents (its action is
//! then `verified`): an MHL history never changes a recorded file.

use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::deliver::hash::{HashKind, c4_id};

/// The history's folder inside the delivery folder.
pub const FOLDER: &str = "ascmhl";
/// The chain file inside [`FOLDER`].
pub const CHAIN: &str = "ascmhl_chain.xml";
/// The lock file inside [`FOLDER`] (ignored by `ascmhl`, which reads only `.mhl` files there).
pub const LOCK: &str = "shotrouter.lock";

/// What a generation records about one delivered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MhlEntry {
    /// The file's path relative to the history's folder.
    pub rel: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its hashes, verified on the destination.
    pub hashes: Vec<(HashKind, String)>,
}

/// Why recording a delivery failed, and whether the copy was already in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MhlFailure {
    /// Before the copy was renamed into place: nothing was delivered.
    Before(String),
    /// After the rename: the copy is in place, its record is missing.
    After(String),
}

/// Under the history's lock: checks the history, runs `place` (the rename of the verified copy),
/// then writes the generation and the chain. Returns the generation file's name, or `place`'s
/// own error (then nothing is written).
///
/// # Errors
/// [`MhlFailure`] with the reason.
pub fn record<E>(
    root: &Path,
    entry: &MhlEntry,
    place: impl FnOnce() -> Result<(), E>,
) -> Result<Result<PathBuf, E>, MhlFailure> {
    let before = |what: String| MhlFailure::Before(what);
    let rel = posix_text(&entry.rel, "the delivered file's path").map_err(before)?;
    let folder_name = root
        .file_name()
        .map(|n| posix_text(Path::new(n), "the ASC MHL folder's name"))
        .transpose()
        .map_err(before)?
        .unwrap_or_else(|| "root".into());
    let folder = root.join(FOLDER);
    std::fs::create_dir_all(&folder)
        .map_err(|e| before(format!("cannot create `{}`: {e}", folder.display())))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(folder.join(LOCK))
        .map_err(|e| {
            before(format!(
                "cannot open the ASC MHL lock in `{}`: {e}",
                folder.display()
            ))
        })?;
    lock.lock().map_err(|e| {
        before(format!(
            "cannot lock the ASC MHL history `{}`: {e}",
            folder.display()
        ))
    })?;
    let history = History::read(&folder).map_err(before)?;
    let actions = history.actions_for(&rel, &entry.hashes).map_err(before)?;
    if let Err(e) = place() {
        return Ok(Err(e));
    }
    let after = |what: String| MhlFailure::After(what);
    let now = jiff::Timestamp::now();
    let number = history.last_generation + 1;
    let name = format!(
        "{number:04}_{folder_name}_{}.mhl",
        now.strftime("%Y-%m-%d_%H%M%SZ")
    );
    let xml = generation_xml(
        &rel,
        entry,
        &actions,
        &now.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
        &hostname(),
    );
    write_replacing(&folder, &name, xml.as_bytes()).map_err(after)?;
    let chain = chain_with(&history.chain, number, &name, &c4_id(xml.as_bytes()));
    if let Err(reason) = write_replacing(&folder, CHAIN, chain.as_bytes()) {
        // A generation the chain does not list would be read as history yet not checked.
        let _ = std::fs::remove_file(folder.join(&name));
        return Err(after(reason));
    }
    if let Ok(dir) = File::open(&folder) {
        let _ = dir.sync_all();
    }
    drop(lock);
    Ok(Ok(PathBuf::from(name)))
}

/// What the history already holds, as far as a new generation needs it.
struct History {
    /// The highest generation number among the `.mhl` files.
    last_generation: u32,
    /// The chain file's text, empty when there is none yet.
    chain: String,
    /// Every generation's text, oldest first.
    generations: Vec<String>,
}

impl History {
    fn read(folder: &Path) -> Result<History, String> {
        let name_pattern = generation_name();
        let mut found: Vec<(u32, PathBuf)> = Vec::new();
        let entries = std::fs::read_dir(folder)
            .map_err(|e| format!("cannot list `{}`: {e}", folder.display()))?;
        for item in entries.flatten() {
            let name = item.file_name();
            let Some(caps) = name.to_str().and_then(|n| name_pattern.captures(n)) else {
                continue;
            };
            if let Ok(number) = caps[1].parse::<u32>() {
                found.push((number, item.path()));
            }
        }
        found.sort();
        let mut generations = Vec::new();
        for (_, path) in &found {
            generations.push(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?,
            );
        }
        let chain_path = folder.join(CHAIN);
        let chain = match std::fs::read_to_string(&chain_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && found.is_empty() => String::new(),
            Err(e) => {
                return Err(format!(
                    "the ASC MHL history in `{}` has generations but its chain `{CHAIN}` cannot be read: {e}",
                    folder.display()
                ));
            }
        };
        Ok(History {
            last_generation: found.last().map_or(0, |(n, _)| *n),
            chain,
            generations,
        })
    }

    /// The action each new hash is recorded with: `original` for a file new to the history,
    /// `verified` for one recorded before with the same contents.
    fn actions_for(
        &self,
        rel: &str,
        hashes: &[(HashKind, String)],
    ) -> Result<Vec<&'static str>, String> {
        let recorded = self.recorded(rel);
        if recorded.is_empty() {
            return Ok(vec!["original"; hashes.len()]);
        }
        let mut compared = false;
        for (kind, hex) in hashes {
            if let Some((_, old)) = recorded.iter().find(|(k, _)| k == kind.as_str()) {
                if old != hex {
                    return Err(format!(
                        "`{rel}` is already recorded in this ASC MHL history with {kind} {old}, and the new contents hash to {hex}: a history never changes a recorded file; deliver under a new name or into a new folder"
                    ));
                }
                compared = true;
            }
        }
        if !compared {
            let formats: Vec<&str> = recorded.iter().map(|(k, _)| k.as_str()).collect();
            return Err(format!(
                "`{rel}` is already recorded in this ASC MHL history with {}, none of which this rule computes; add one of them to `hash:` so the new copy can be compared",
                formats.join(", ")
            ));
        }
        Ok(vec!["verified"; hashes.len()])
    }

    /// The `(format, hash)` pairs every generation recorded for `rel`.
    fn recorded(&self, rel: &str) -> Vec<(String, String)> {
        let hash = Regex::new(r"(?s)<hash>\s*<path[^>]*>([^<]*)</path>(.*?)</hash>")
            .expect("a valid regex");
        let value = Regex::new(r"<(md5|sha1|c4|xxh32|xxh64|xxh3|xxh128)\b[^>]*>([^<]*)</")
            .expect("a valid regex");
        let mut out = Vec::new();
        for text in &self.generations {
            for caps in hash.captures_iter(text) {
                if unescape(&caps[1]) != rel {
                    continue;
                }
                for v in value.captures_iter(&caps[2]) {
                    out.push((v[1].to_string(), v[2].trim().to_string()));
                }
            }
        }
        out
    }
}

fn generation_name() -> Regex {
    // ascmhl's own rule for a generation's file name (`history_file_name_regex`).
    Regex::new(r"^(\d{4,})(?:_(.+))?\.mhl$").expect("a valid regex")
}

/// A generation's XML, as `ascmhl` writes one for a transfer.
fn generation_xml(rel: &str, entry: &MhlEntry, actions: &[&str], date: &str, host: &str) -> String {
    let mut hashes: Vec<(&(HashKind, String), &str)> =
        entry.hashes.iter().zip(actions.iter().copied()).collect();
    // ascmhl sorts a file's hashes by format name.
    hashes.sort_by_key(|((kind, _), _)| kind.as_str());
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<hashlist version=\"2.0\" xmlns=\"urn:ASC:MHL:v2.0\">\n",
    );
    xml.push_str(&format!(
        "  <creatorinfo>\n    <creationdate>{date}</creationdate>\n    <hostname>{}</hostname>\n    <tool version=\"{}\">shotrouter</tool>\n  </creatorinfo>\n",
        escape(host),
        env!("CARGO_PKG_VERSION")
    ));
    xml.push_str("  <processinfo>\n    <process>transfer</process>\n    <ignore>\n      <pattern>.DS_Store</pattern>\n      <pattern>ascmhl</pattern>\n      <pattern>ascmhl/</pattern>\n    </ignore>\n  </processinfo>\n");
    xml.push_str("  <hashes>\n    <hash>\n");
    xml.push_str(&format!(
        "      <path size=\"{}\">{}</path>\n",
        entry.size,
        escape(rel)
    ));
    for ((kind, hex), action) in hashes {
        xml.push_str(&format!(
            "      <{kind} action=\"{action}\" hashdate=\"{date}\">{hex}</{kind}>\n"
        ));
    }
    xml.push_str("    </hash>\n  </hashes>\n</hashlist>\n");
    xml
}

/// The chain file `chain` (empty: none yet) with one more generation at its end.
fn chain_with(chain: &str, number: u32, name: &str, c4: &str) -> String {
    let item = format!(
        "  <hashlist sequencenr=\"{number}\">\n    <path>{}</path>\n    <c4>{c4}</c4>\n  </hashlist>\n",
        escape(name)
    );
    const END: &str = "</ascmhldirectory>";
    match chain.rfind(END) {
        Some(at) => format!("{}{item}{}", &chain[..at], &chain[at..]),
        None => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ascmhldirectory xmlns=\"urn:ASC:MHL:DIRECTORY:v2.0\">\n{item}{END}\n"
        ),
    }
}

/// Writes `name` in `folder` through a hidden temp file, flushed, then renamed over it.
fn write_replacing(folder: &Path, name: &str, data: &[u8]) -> Result<(), String> {
    let temp = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let target = folder.join(name);
    let result = File::create(&temp)
        .and_then(|mut file| {
            file.write_all(data)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, &target));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        format!("cannot write `{}`: {e}", target.display())
    })
}

/// A path as the UTF-8, `/`-separated text XML can carry; refused when it cannot carry it
/// faithfully (non-UTF-8 bytes, control characters XML 1.0 forbids or would normalise).
fn posix_text(path: &Path, what: &str) -> Result<String, String> {
    let bytes = path.as_os_str().as_bytes();
    let text = std::str::from_utf8(bytes).map_err(|_| {
        format!(
            "{what} `{}` is not UTF-8, which an ASC MHL file cannot record; rename it or leave out `mhl: true`",
            path.display()
        )
    })?;
    if text
        .chars()
        .any(|c| c.is_control() && c != '\t' && c != '\n')
        || text.contains('\r')
    {
        return Err(format!(
            "{what} `{}` holds a control character, which an ASC MHL file cannot record faithfully; rename it or leave out `mhl: true`",
            text.escape_debug()
        ));
    }
    Ok(text.to_string())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel: &str, xxh64: &str) -> MhlEntry {
        MhlEntry {
            rel: PathBuf::from(rel),
            size: 3,
            hashes: vec![
                (HashKind::Xxh64, xxh64.to_string()),
                (
                    HashKind::Md5,
                    "900150983cd24fb0d6963f7d28e17f72".to_string(),
                ),
            ],
        }
    }

    #[test]
    fn a_generation_is_the_xml_ascmhl_writes_for_a_transfer() {
        let e = entry("sq010/a & <b>.mov", "44bc2cf5ad770999");
        let xml = generation_xml(
            "sq010/a & <b>.mov",
            &e,
            &["original", "original"],
            "2026-11-29T22:00:00+00:00",
            "host",
        );
        assert_eq!(
            xml,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<hashlist version="2.0" xmlns="urn:ASC:MHL:v2.0">
  <creatorinfo>
    <creationdate>2026-11-29T22:00:00+00:00</creationdate>
    <hostname>host</hostname>
    <tool version="{}">shotrouter</tool>
  </creatorinfo>
  <processinfo>
    <process>transfer</process>
    <ignore>
      <pattern>.DS_Store</pattern>
      <pattern>ascmhl</pattern>
      <pattern>ascmhl/</pattern>
    </ignore>
  </processinfo>
  <hashes>
    <hash>
      <path size="3">sq010/a &amp; &lt;b&gt;.mov</path>
      <md5 action="original" hashdate="2026-11-29T22:00:00+00:00">900150983cd24fb0d6963f7d28e17f72</md5>
      <xxh64 action="original" hashdate="2026-11-29T22:00:00+00:00">44bc2cf5ad770999</xxh64>
    </hash>
  </hashes>
</hashlist>
"#,
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn the_chain_grows_by_one_hashlist_per_generation() {
        let one = chain_with("", 1, "0001_d_x.mhl", "c4one");
        assert_eq!(
            one,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ascmhldirectory xmlns=\"urn:ASC:MHL:DIRECTORY:v2.0\">\n  <hashlist sequencenr=\"1\">\n    <path>0001_d_x.mhl</path>\n    <c4>c4one</c4>\n  </hashlist>\n</ascmhldirectory>\n"
        );
        let two = chain_with(&one, 2, "0002_d_y.mhl", "c4two");
        assert!(two.starts_with(&one[..one.len() - "</ascmhldirectory>\n".len()]));
        assert!(two.ends_with("    <c4>c4two</c4>\n  </hashlist>\n</ascmhldirectory>\n"));
    }

    #[test]
    fn records_number_generations_and_refuse_changed_contents() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path().join("day 1");
        std::fs::create_dir_all(&root).expect("root");
        let placed = |n: &mut u32| {
            *n += 1;
            Ok::<(), ()>(())
        };
        let mut renames = 0;
        let first = record(&root, &entry("a.mov", "44bc2cf5ad770999"), || {
            placed(&mut renames)
        })
        .expect("recorded")
        .expect("placed");
        assert!(
            first.to_string_lossy().starts_with("0001_day 1_"),
            "{first:?}"
        );
        // The same contents again: a second generation that verifies, not a conflict.
        let second = record(&root, &entry("a.mov", "44bc2cf5ad770999"), || {
            placed(&mut renames)
        })
        .expect("recorded")
        .expect("placed");
        assert!(second.to_string_lossy().starts_with("0002_"));
        let text = std::fs::read_to_string(root.join(FOLDER).join(&second)).expect("read");
        assert!(text.contains(r#"<xxh64 action="verified""#), "{text}");
        let changed = record(&root, &entry("a.mov", "0000000000000000"), || {
            placed(&mut renames)
        });
        assert!(
            matches!(&changed, Err(MhlFailure::Before(m)) if m.contains("already recorded")),
            "{changed:?}"
        );
        assert_eq!(renames, 2, "a refused delivery is not renamed into place");
        let chain = std::fs::read_to_string(root.join(FOLDER).join(CHAIN)).expect("chain");
        assert_eq!(chain.matches("<hashlist ").count(), 2);
        let c4 = c4_id(&std::fs::read(root.join(FOLDER).join(&first)).expect("gen"));
        assert!(chain.contains(&format!("<c4>{c4}</c4>")));
    }

    #[test]
    fn paths_xml_cannot_carry_are_refused() {
        use std::os::unix::ffi::OsStrExt;
        let bad = Path::new(std::ffi::OsStr::from_bytes(b"a\xffb.mov"));
        assert!(
            posix_text(bad, "the file")
                .expect_err("non-utf-8")
                .contains("not UTF-8")
        );
        assert!(posix_text(Path::new("a\u{1}b"), "the file").is_err());
        assert_eq!(
            posix_text(Path::new("a $(b) \"c\".mov"), "f").as_deref(),
            Ok("a $(b) \"c\".mov")
        );
    }
}
