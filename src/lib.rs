//! shotrouter: routes files arriving in a studio's shot tree to the jobs that must run on them.
//!
//! Pipeline: file sources (inotify, polling) → matcher (rules.yaml) → runner (argv via duct, never a shell).
//! `main.rs` only parses the command line and calls [`run`].
//!
//! The modules are floors of one house. Each floor may use only the floors below it, never one
//! above, so data walks down one corridor and nothing walks back up:
//!
//! ```text
//! app      cli, commands, explain, ops    everything below
//! http     api, dashboard, live updates   engine (telemetry), store (history), exec (kill grace),
//!                                         media, rules, os
//! engine   node (the loop every node runs: source, route, exec, cutfile, store, rules,
//!          committer, liveness, recovery); edit (frame classes), media, os
//!          the watcher (intake, sequences,
//!          dispatch, outcomes, telemetry)
//!          and the worker, its two roles
//! source   file events (inotify, poll)    rules (watch roots), os
//! route    matcher, plan: all binding     rules, deliver, media
//! exec     pool, runner, watchdog, temps  deliver, cutfile (notices), store (job ids), media
//!                                         (views), os
//! rules    rules.yaml → RuleFile          deliver (expectation type), media, os (PATH lookup)
//! deliver  Step: verify, publish          media, os
//! cutfile  cut files read, revisions      store, edit, media, os
//!          computed and stored (`cut
//!          import`, `cuts.files`)
//! store    job queue and history          os
//! edit     cut readers (EDL, .otio), shot  media (timecode)
//!          ranges, revision diff
//! media    sequence, timecode, keykode,   os
//!          probe (ffprobe)
//! os       process groups, programs, file versions, quoting, owner lock, folder handles
//! ```
//!
//! `error` is the crate-level error that [`run`] returns; it sits with `app`.
//! [`run`] itself is `app::commands::run`.

pub mod app;
pub mod cutfile;
pub mod deliver;
pub mod edit;
pub mod engine;
pub mod error;
pub mod exec;
pub mod http;
pub mod media;
pub mod os;
pub mod route;
pub mod rules;
pub mod source;
pub mod store;

pub use app::commands::run;
pub use error::Error;
