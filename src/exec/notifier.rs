//! Delivers notifications (`notify:` in rules.yaml) on a thread of its own: a JSON POST to a
//! webhook and/or a command with the JSON body on stdin (argv templates, never a shell).
//!
//! Nothing here can hold up a job or the engine: [`Notifier::send`] only queues on a
//! [`Courier`] (bounded, the oldest dropped when full, failed tries repeated with backoff). The
//! body's schema is documented in docs/dashboard.md ("Notifications").

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;

use crate::cutfile::ExtendedShot;
use crate::exec::courier::{Courier, Parcel, post_json};
use crate::rules::template::Bindings;
use crate::rules::{NotifyEvent, NotifyTarget};

/// Longest a notification command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What happened to a job, as the JSON body says it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Notice {
    /// `failed`, `done`, `verify_failed`, `stuck`, `outside_cut` or `extended`.
    pub event: &'static str,
    /// The job's id.
    pub job: String,
    /// Its rule.
    pub rule: String,
    /// Its input, as UTF-8 (invalid bytes replaced).
    pub path: String,
    /// Its input's exact bytes, base64 (standard alphabet, padded): names need not be UTF-8.
    pub path_b64: String,
    /// Which attempt (1 for the first).
    pub attempt: u32,
    /// Why it failed (`failed`, `verify_failed`), or how long it waited (`stuck`).
    pub reason: Option<String>,
    /// The node that ran it.
    pub node: String,
    /// When the event happened, unix ms.
    pub at_ms: i64,
    /// When its attempt started, unix ms (the end less the duration when no start was
    /// reported); `None` in notices that are not of an end.
    pub started_at_ms: Option<i64>,
    /// How long its attempt ran, ms, when it ran.
    pub duration_ms: Option<u64>,
    /// Raw input path, for the command's `{path}`; not serialized (the body has `path_b64`).
    #[serde(skip)]
    pub raw_path: PathBuf,
    /// Of the cut (`outside_cut`, `extended`, a cut file that failed): its keys join the body's.
    #[serde(flatten)]
    pub cut: Option<CutAbout>,
}

/// What a notice of the cut says of it, beside the job keys (`job` and `rule` then empty,
/// `path` the cut file or the first frame outside).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct CutAbout {
    /// The cut's name.
    pub cut: String,
    /// Its revision (0 for a file that could not be imported).
    pub revision: i64,
    /// `outside_cut`: the shot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shot: Option<String>,
    /// `outside_cut`: how many distinct frames arrived outside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `outside_cut`: the lowest of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_frame: Option<i64>,
    /// `outside_cut`: the highest of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_frame: Option<i64>,
    /// `extended`: each shot extended, its new range and the frames needed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shots: Vec<ExtendedShot>,
}

impl Notice {
    /// A notice of `event` about a job of `rule` on `path`.
    pub fn new(event: NotifyEvent, job: &str, rule: &str, path: &std::path::Path) -> Notice {
        Notice {
            event: event.as_str(),
            job: job.to_string(),
            rule: rule.to_string(),
            path: path.to_string_lossy().into_owned(),
            path_b64: base64::engine::general_purpose::STANDARD.encode(path.as_os_str().as_bytes()),
            attempt: 1,
            reason: None,
            node: String::new(),
            at_ms: 0,
            started_at_ms: None,
            duration_ms: None,
            raw_path: path.to_path_buf(),
            cut: None,
        }
    }
}

/// One delivery: a notice to one target.
struct Item {
    notice: Arc<Notice>,
    target: Arc<NotifyTarget>,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.notice;
        write!(
            f,
            "event={} job={} rule={} target_line={}",
            n.event, n.job, n.rule, self.target.line
        )
    }
}

impl Parcel for Item {
    fn deliver(&self, agent: &ureq::Agent) -> Result<(), String> {
        deliver(agent, &self.notice, &self.target)
    }
}

/// The delivery thread and its queue.
pub struct Notifier {
    courier: Courier<Item>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::start()
    }
}

impl Notifier {
    /// Starts the delivery thread.
    pub fn start() -> Notifier {
        Notifier {
            courier: Courier::start("notifier", "notification"),
        }
    }

    /// Queues `notice` for every target; returns at once. A full queue drops its oldest.
    pub fn send(&self, notice: Notice, targets: &[Arc<NotifyTarget>]) {
        if targets.is_empty() {
            return;
        }
        let notice = Arc::new(notice);
        self.courier.send(targets.iter().map(|target| Item {
            notice: notice.clone(),
            target: target.clone(),
        }));
    }

    /// Delivers what is due within `grace`, then stops (see [`Courier::finish`]).
    pub fn finish(self, grace: Duration) {
        self.courier.finish(grace);
    }
}

/// One try at a target: the webhook, then the command; both must succeed.
fn deliver(agent: &ureq::Agent, notice: &Notice, target: &NotifyTarget) -> Result<(), String> {
    let body = serde_json::to_vec(notice).map_err(|e| e.to_string())?;
    if let Some(url) = &target.webhook {
        post_json(agent, url, &body).map_err(|e| format!("webhook {e}"))?;
    }
    if let Some(command) = &target.command {
        run_command(command, notice, body)?;
    }
    Ok(())
}

fn run_command(
    command: &[crate::rules::template::Template],
    notice: &Notice,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut vars = Bindings::default();
    vars.insert("event", notice.event);
    vars.insert("job", notice.job.as_str());
    vars.insert("rule", notice.rule.as_str());
    vars.insert("path", notice.raw_path.as_os_str().as_bytes());
    vars.insert("attempt", notice.attempt.to_string());
    vars.insert("reason", notice.reason.clone().unwrap_or_default());
    vars.insert("node", notice.node.as_str());
    let cut = notice.cut.as_ref();
    vars.insert("cut", cut.map_or("", |c| c.cut.as_str()));
    vars.insert("shot", cut.and_then(|c| c.shot.as_deref()).unwrap_or(""));
    vars.insert(
        "revision",
        cut.map_or(String::new(), |c| c.revision.to_string()),
    );
    for template in command {
        for (var, _) in template.variables() {
            if let Some(name) = var.strip_prefix("env.")
                && let Some(value) = std::env::var_os(name)
            {
                vars.insert(var, value.as_bytes());
            }
        }
    }
    let argv: Vec<OsString> = command
        .iter()
        .map(|t| t.expand(&vars))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let shown = String::from_utf8_lossy(program.as_bytes()).into_owned();
    let run = crate::os::program::command(program, args)
        .stdin_bytes(body)
        .stdout_null()
        .stderr_null();
    match crate::os::program::output_within(run, COMMAND_TIMEOUT) {
        Ok(Some(output)) if output.status.success() => Ok(()),
        Ok(Some(output)) => Err(format!("command `{shown}` {}", output.status)),
        Ok(None) => Err(format!(
            "command `{shown}` ran longer than {COMMAND_TIMEOUT:?}; killed"
        )),
        Err(e) => Err(format!("command `{shown}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_the_exact_path_bytes_beside_a_readable_one() {
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/s/<script>\xff\".tif"));
        let notice = Notice::new(NotifyEvent::Failed, "7", "review", path);
        let json = serde_json::to_value(&notice).expect("json");
        assert_eq!(json["event"], "failed");
        assert_eq!(json["path"], "/s/<script>\u{fffd}\".tif");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(json["path_b64"].as_str().expect("text"))
            .expect("base64");
        assert_eq!(raw, b"/s/<script>\xff\".tif");
        assert!(json.get("raw_path").is_none());
        assert!(json.get("cut").is_none() && json.get("shots").is_none());
    }

    #[test]
    fn a_cut_notice_carries_the_cut_beside_the_job_keys() {
        let mut notice = Notice::new(
            NotifyEvent::OutsideCut,
            "",
            "comp",
            "/s/sh010.0990.exr".as_ref(),
        );
        notice.cut = Some(CutAbout {
            cut: "reel1".into(),
            revision: 2,
            shot: Some("sh010".into()),
            count: Some(3),
            first_frame: Some(990),
            last_frame: Some(992),
            shots: Vec::new(),
        });
        let json = serde_json::to_value(&notice).expect("json");
        assert_eq!(json["event"], "outside_cut");
        assert_eq!(json["cut"], "reel1");
        assert_eq!(json["revision"], 2);
        assert_eq!(json["shot"], "sh010");
        assert_eq!(
            (json["count"].as_u64(), json["first_frame"].as_i64()),
            (Some(3), Some(990))
        );
        assert!(json.get("shots").is_none());
    }
}
