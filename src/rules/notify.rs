//! `notify:` at the top of a rules file and on a rule: who is told when a job fails for good,
//! succeeds, fails its product's verification, or waits in the queue too long, and of the cut
//! (frames arriving outside it, a revision that extends shots). A rule's own
//! `notify:` replaces the file's (`notify: []` silences one rule). Everything is checked at
//! load: event names (with a suggestion), webhook URLs (`http://` or `https://` with a host),
//! command templates (only the variables of [`NOTIFY_VARIABLES`]).

use std::time::Duration;

use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::syntax::did_you_mean;
use crate::rules::template::Template;
use crate::rules::yaml::{Node, NodeKind};

/// The variables a notification `command:` may use.
pub const NOTIFY_VARIABLES: &[&str] = &[
    "event", "job", "rule", "path", "attempt", "reason", "node", "cut", "shot", "revision",
];

/// How long a job may wait in the queue before `stuck` fires, unless `stuck_after:` says.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(30 * 60);

const TARGET_KEYS: &[&str] = &["on", "webhook", "command", "stuck_after"];

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NotifyEvent {
    /// A job failed after its last retry (or was cancelled, or could not be planned).
    Failed,
    /// A job succeeded.
    Done,
    /// An attempt's product was not what `verify:` asks for (each attempt, retried or not).
    VerifyFailed,
    /// A job has been queued longer than `stuck_after`.
    Stuck,
    /// Frames of a shot keep arriving outside its cut's `head_in..tail_out` (once per shot and
    /// cut revision).
    OutsideCut,
    /// A new cut revision needs frames past a shot's previous `head_in..tail_out`.
    Extended,
}

impl NotifyEvent {
    /// Every event, in the order the docs list them.
    pub const ALL: [NotifyEvent; 6] = [
        NotifyEvent::Failed,
        NotifyEvent::Done,
        NotifyEvent::VerifyFailed,
        NotifyEvent::Stuck,
        NotifyEvent::OutsideCut,
        NotifyEvent::Extended,
    ];

    /// The name written in rules.yaml and in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Failed => "failed",
            NotifyEvent::Done => "done",
            NotifyEvent::VerifyFailed => "verify_failed",
            NotifyEvent::Stuck => "stuck",
            NotifyEvent::OutsideCut => "outside_cut",
            NotifyEvent::Extended => "extended",
        }
    }

    /// Whether only the watcher tells it (of the cut, not of a job's end): a job's plan leaves
    /// it out, so a worker that does not know the name still tells the target the rest.
    pub fn watcher_only(self) -> bool {
        matches!(self, NotifyEvent::OutsideCut | NotifyEvent::Extended)
    }
}

/// One `notify:` entry: on which events, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    /// The events it wants.
    pub events: Vec<NotifyEvent>,
    /// A URL the JSON body is POSTed to.
    pub webhook: Option<String>,
    /// A command run with the JSON body on stdin (argv templates, never a shell).
    pub command: Option<Vec<Template>>,
    /// How long a job may be queued before `stuck` fires.
    pub stuck_after: Duration,
    /// Line of the entry, for messages.
    pub line: usize,
}

impl NotifyTarget {
    /// Whether it wants `event`.
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events.contains(&event)
    }
}

impl Loader<'_> {
    /// `notify:` under `map`: one entry (a mapping) or a list of them; `None` when absent.
    pub(super) fn notify(&mut self, map: &MapReader<'_>) -> Option<Vec<NotifyTarget>> {
        let node = map.node.get("notify")?;
        let place = if map.place.is_empty() {
            "notify".to_string()
        } else {
            format!("{}.notify", map.place)
        };
        let entries: Vec<(&Node, String)> = match &node.kind {
            NodeKind::Map(_) => vec![(node, place)],
            NodeKind::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, format!("{place}[{i}]")))
                .collect(),
            _ => {
                self.error(
                    Diagnostic::new("`notify` takes a mapping or a list of them", node.span)
                        .context(map.at("notify"))
                        .hint(
                            "e.g. `notify: {on: [failed], webhook: \"https://chat.example/hook\"}`",
                        ),
                );
                return Some(Vec::new());
            }
        };
        let mut targets = Vec::new();
        for (item, place) in entries {
            let entry = MapReader {
                node: item,
                place,
                rule: map.rule.clone(),
            };
            if !matches!(item.kind, NodeKind::Map(_)) {
                self.error(
                    Diagnostic::new("a `notify` entry is a mapping with `on`", item.span)
                        .context(entry.at("")),
                );
                continue;
            }
            if let Some(target) = self.notify_target(&entry) {
                targets.push(target);
            }
        }
        Some(targets)
    }

    fn notify_target(&mut self, entry: &MapReader<'_>) -> Option<NotifyTarget> {
        let errors_before = self.errors.len();
        let _ = self.unknown_keys(entry, TARGET_KEYS);
        let events = self.notify_events(entry);
        let webhook = self.webhook(entry);
        let command = entry.node.get("command").and_then(|node| {
            let known: Vec<String> = NOTIFY_VARIABLES.iter().map(|v| v.to_string()).collect();
            let items: Vec<&Node> = node.items().iter().collect();
            if items.is_empty() || !matches!(node.kind, NodeKind::Seq(_)) {
                self.error(
                    Diagnostic::new("`command` takes a non-empty argv list", node.span)
                        .context(entry.at("command"))
                        .hint("e.g. `command: [/usr/local/bin/page-oncall, \"{rule}\"]`"),
                );
                return None;
            }
            let argv: Vec<Option<Template>> = items
                .into_iter()
                .map(|item| self.template(entry, item, "command", &known))
                .collect();
            argv.into_iter().collect::<Option<Vec<_>>>()
        });
        if entry.node.get("webhook").is_none() && entry.node.get("command").is_none() {
            self.error(
                Diagnostic::new(
                    "a `notify` entry needs `webhook` or `command`, or both",
                    entry.node.span,
                )
                .context(entry.at("")),
            );
        }
        let stuck_after = match entry.node.get("stuck_after") {
            Some(_) => self.duration(entry, "stuck_after"),
            None => Some(DEFAULT_STUCK_AFTER),
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(NotifyTarget {
            events: events?,
            webhook,
            command,
            stuck_after: stuck_after?,
            line: entry.node.span.line,
        })
    }

    fn notify_events(&mut self, entry: &MapReader<'_>) -> Option<Vec<NotifyEvent>> {
        let Some(node) = entry.node.get("on") else {
            self.error(
                Diagnostic::new("a `notify` entry needs `on`", entry.node.span)
                    .context(entry.at(""))
                    .hint("e.g. `on: [failed, verify_failed, stuck]`"),
            );
            return None;
        };
        let mut events = Vec::new();
        let mut ok = true;
        for item in node.items() {
            let Some(name) = item.as_scalar() else {
                ok = false;
                self.error(
                    Diagnostic::new("`on` items are event names", item.span)
                        .context(entry.at("on")),
                );
                continue;
            };
            match NotifyEvent::ALL.into_iter().find(|e| e.as_str() == name) {
                Some(event) => events.push(event),
                None => {
                    ok = false;
                    let names = NotifyEvent::ALL.map(NotifyEvent::as_str);
                    let hint = match did_you_mean(name, names.into_iter()) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => format!("known: {}", names.join(", ")),
                    };
                    self.error(
                        Diagnostic::new(format!("unknown notify event `{name}`"), item.span)
                            .context(entry.at("on"))
                            .hint(hint),
                    );
                }
            }
        }
        ok.then_some(events)
    }

    fn webhook(&mut self, entry: &MapReader<'_>) -> Option<String> {
        let node = entry.node.get("webhook")?;
        let text = self.field::<String>(entry, "webhook")?;
        let scheme_ok = text.starts_with("http://") || text.starts_with("https://");
        let host_ok = text
            .parse::<ureq::http::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(|h| !h.is_empty()))
            .unwrap_or(false);
        if scheme_ok && host_ok {
            return Some(text);
        }
        let problem = if scheme_ok {
            format!("webhook `{text}` is not a valid URL")
        } else {
            format!("webhook `{text}` must be an `http://` or `https://` URL")
        };
        self.error(
            Diagnostic::new(problem, node.span)
                .context(entry.at("webhook"))
                .hint("e.g. `webhook: \"https://chat.example/hooks/render-farm\"`"),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn load(body: &str) -> Result<crate::rules::RuleFile, String> {
        crate::rules::parse(
            Path::new("rules.yaml"),
            &format!("version: 1\nwatch: [shots]\n{body}"),
            Path::new("/show"),
        )
        .map_err(|d| d.to_string())
    }

    #[test]
    fn file_entries_apply_to_rules_without_their_own_and_a_rule_can_replace_them() {
        let file = load(
            "notify:\n  - on: [failed, stuck]\n    webhook: \"http://127.0.0.1:9/hook\"\n    stuck_after: 10m\n  - on: done\n    command: [/bin/tell, \"{rule}: {event} {path}\"]\nrules:\n  - name: a\n    match: \"*.tif\"\n    run: [\"true\"]\n  - name: b\n    match: \"*.exr\"\n    run: [\"true\"]\n    notify: []\n  - name: c\n    match: \"*.dpx\"\n    run: [\"true\"]\n    progress: ffmpeg\n    notify: {on: verify_failed, webhook: \"https://chat.example/x\"}\n",
        )
        .expect("valid");
        let a = file.rules[0].notify_targets(&file);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].events, [NotifyEvent::Failed, NotifyEvent::Stuck]);
        assert_eq!(a[0].stuck_after, Duration::from_secs(600));
        assert_eq!(a[1].stuck_after, DEFAULT_STUCK_AFTER);
        assert_eq!(
            a[1].command.as_ref().map(|c| c[1].source()),
            Some("{rule}: {event} {path}")
        );
        assert!(
            file.rules[1].notify_targets(&file).is_empty(),
            "`notify: []` silences"
        );
        let c = file.rules[2].notify_targets(&file);
        assert_eq!(c.len(), 1);
        assert!(c[0].wants(NotifyEvent::VerifyFailed) && !c[0].wants(NotifyEvent::Failed));
        assert_eq!(
            file.rules[2].progress,
            Some(crate::rules::ProgressKind::Ffmpeg)
        );
    }

    #[test]
    fn cut_events_load_and_misspelt_ones_get_a_suggestion() {
        let file = load(
            "notify: {on: [outside_cut, extended, failed], webhook: \"http://127.0.0.1:9/h\"}\nrules:\n  - name: a\n    match: \"*\"\n    run: [\"true\"]\n    notify: {on: extended, command: [tell, \"{event}\"]}\n",
        )
        .expect("valid");
        assert_eq!(
            file.notify[0].events,
            [
                NotifyEvent::OutsideCut,
                NotifyEvent::Extended,
                NotifyEvent::Failed
            ]
        );
        assert!(file.rules[0].notify_targets(&file)[0].wants(NotifyEvent::Extended));
        let err = load("notify: {on: [outside_cutt, extend], command: [x]}\nrules: []\n")
            .expect_err("invalid");
        assert!(err.contains("did you mean `outside_cut`?"), "{err}");
        assert!(err.contains("did you mean `extended`?"), "{err}");
    }

    #[test]
    fn bad_entries_are_positioned_errors_with_a_fix() {
        let cases: &[(&str, &str)] = &[
            (
                "notify:\n  - on: [faild]\n    webhook: \"ftp://x/y\"\nrules: []\n",
                "error: unknown notify event `faild`
 --> rules.yaml:4:10
  |
4 |   - on: [faild]
  |          ^
  = note: in notify[0].on
  = help: did you mean `failed`?

error: webhook `ftp://x/y` must be an `http://` or `https://` URL
 --> rules.yaml:5:14
  |
5 |     webhook: \"ftp://x/y\"
  |              ^
  = note: in notify[0].webhook
  = help: e.g. `webhook: \"https://chat.example/hooks/render-farm\"`

2 errors in rules.yaml",
            ),
            (
                "rules:\n  - name: r\n    match: \"*\"\n    run: [\"true\"]\n    notify:\n      - on: [done]\n        command: [tell, \"{rul}\"]\n        stuck_afte: 5m\n",
                "error: unknown template variable `{rul}`
 --> rules.yaml:9:26
  |
9 |         command: [tell, \"{rul}\"]
  |                          ^
  = note: in rules[0].notify[0].command (rule `r`)
  = help: did you mean `{rule}`?

error: unknown key `stuck_afte`
 --> rules.yaml:10:9
   |
10 |         stuck_afte: 5m
   |         ^
   = note: in rules[0].notify[0] (rule `r`)
   = help: did you mean `stuck_after`?

2 errors in rules.yaml",
            ),
            (
                "notify: {on: [done]}\nrules:\n  - name: r\n    match: \"*\"\n    run: [\"true\"]\n    progress: ffmepg\n",
                "error: a `notify` entry needs `webhook` or `command`, or both
 --> rules.yaml:3:10
  |
3 | notify: {on: [done]}
  |          ^
  = note: in notify

error: `progress`: unknown variant `ffmepg`, expected `ffmpeg`
 --> rules.yaml:8:15
  |
8 |     progress: ffmepg
  |               ^
  = note: in rules[0].progress (rule `r`)

2 errors in rules.yaml",
            ),
        ];
        for (body, expected) in cases {
            let got = load(body).expect_err("invalid");
            assert_eq!(got, *expected, "{body}");
        }
    }
}
