//! A rule's `notify:` targets as the plan carries them: the node that runs the job, watcher or
//! worker, tells them of its end.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rules::template::Template;
use crate::rules::{NotifyEvent, NotifyTarget};

/// A [`NotifyTarget`] in text form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortableNotify {
    /// The events it wants (`done`, `failed`...).
    pub on: Vec<String>,
    /// The webhook's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// The command's argv templates, as written in the rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// `stuck_after`, ms.
    pub stuck_after_ms: u64,
}

impl PortableNotify {
    /// The target as the plan carries it.
    pub fn of(target: &NotifyTarget) -> PortableNotify {
        PortableNotify {
            on: target
                .events
                .iter()
                .filter(|e| !e.watcher_only())
                .map(|e| e.as_str().to_string())
                .collect(),
            webhook: target.webhook.clone(),
            command: target
                .command
                .as_ref()
                .map(|argv| argv.iter().map(|t| t.source().to_string()).collect()),
            stuck_after_ms: target.stuck_after.as_millis() as u64,
        }
    }

    /// The target again; the watcher checked it when it loaded its rules. `None` when the plan
    /// names an event this worker does not know (a newer watcher's): the target is left out
    /// with a warning rather than the whole job declined.
    pub fn to_target(&self) -> Result<Option<NotifyTarget>, String> {
        let mut events = Vec::with_capacity(self.on.len());
        for name in &self.on {
            match NotifyEvent::ALL.into_iter().find(|e| e.as_str() == name) {
                Some(event) => events.push(event),
                None => {
                    tracing::warn!(
                        event = %name,
                        webhook = self.webhook.as_deref().unwrap_or(""),
                        "unknown notify event `{name}` in the job's plan (a newer watcher's?); this target is not told"
                    );
                    return Ok(None);
                }
            }
        }
        let command = match &self.command {
            Some(argv) => Some(
                argv.iter()
                    .map(|text| {
                        Template::parse(text)
                            .map_err(|e| format!("notify command `{text}` in the job's plan: {e}"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            None => None,
        };
        Ok(Some(NotifyTarget {
            events,
            webhook: self.webhook.clone(),
            command,
            stuck_after: Duration::from_millis(self.stuck_after_ms),
            line: 0,
        }))
    }
}
