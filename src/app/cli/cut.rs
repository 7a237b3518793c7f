//! `shotrouter cut`: clap types of the cut commands (import, show, ranges, waste). What they do is
//! `app::cut`'s.

use std::path::PathBuf;

use clap::Subcommand;

use crate::app::cli::{StateArgs, Verbosity};
use crate::media::timecode::Rate;

/// Where the cut commands find the store and the rules' `cuts:` block. Unlike the other
/// operations commands, `--rules` may come with `--state` or `--store`: the rules name the
/// shots, the store may be elsewhere.
#[derive(Debug, Clone, clap::Args)]
pub struct CutPlace {
    /// The rules file: its `cuts:` block says how shots are named and their handles, and its
    /// default state folder `.shotrouter/` beside it is used unless `--state` or `--store` say.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// The state folder (as given to `watch --state`).
    #[arg(long, env = "SHOTROUTER_STATE")]
    pub state: Option<PathBuf>,
    /// The shared store: a `postgres://` URL (the password from a passfile or `PGPASSWORD`,
    /// never the command line), or a state folder.
    #[arg(long, env = "SHOTROUTER_STORE")]
    pub store: Option<String>,
}

impl CutPlace {
    /// The store's place as the other operations commands take it.
    pub fn state(&self) -> StateArgs {
        StateArgs {
            state: self.state.clone(),
            rules: self.rules.clone(),
            store: self.store.clone(),
        }
    }
}

/// The cut commands.
#[derive(Debug, Subcommand)]
pub enum CutCommand {
    /// Read an EDL or .otio file (AAF and FCP XML through `otioconvert`) and store it as the
    /// next revision of a cut; print each shot's frames, items and change.
    #[command(
        after_help = "Examples:\n  shotrouter cut import --rules rules.yaml editorial/reel1_v012.edl --name reel1 --fps 24\n  shotrouter cut import --rules rules.yaml promo.otio --json\n\nThe shot of each clip comes from the rules' `cuts:` block (else the clip name's leading\nletters and digits, e.g. `sh010`). Exit status: 0 stored, 1 the file cannot be read, 2 usage."
    )]
    Import {
        /// The cut file: `.edl` (CMX 3600), `.otio`; `.aaf`, `.xml`, `.fcpxml` with `otioconvert`.
        file: PathBuf,
        /// The cut's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// The rate an EDL counts in (24, 23.976, 25, 29.97, 30000/1001...); default: the
        /// rules' `cuts.fps`. An .otio file carries its own.
        #[arg(long, value_parser = parse_rate)]
        fps: Option<Rate>,
        /// Print the stored revision as JSON.
        #[arg(long)]
        json: bool,
        /// Where the rules and the store are.
        #[command(flatten)]
        place: CutPlace,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Show a revision of a cut (the latest by default): each shot's frames, items and change.
    #[command(
        after_help = "Examples:\n  shotrouter cut show reel1\n  shotrouter cut show reel1 --revision 2 --json\n  shotrouter cut show            # the only cut, or the list of cuts"
    )]
    Show {
        /// The cut (default: the only one in the store).
        name: Option<String>,
        /// Which revision (default: the latest).
        #[arg(long)]
        revision: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the rules and the store are.
        #[command(flatten)]
        place: CutPlace,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Print per shot the frames to render, `head_in-tail_out`, from the latest revision.
    #[command(
        after_help = "Examples:\n  shotrouter cut ranges reel1\n  shotrouter cut ranges --json | jq -r '.shots[] | \"\\(.shot) \\(.frames)\"'"
    )]
    Ranges {
        /// The cut (default: the only one in the store).
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the rules and the store are.
        #[command(flatten)]
        place: CutPlace,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
    /// Per shot of the latest revision: frames on disk outside `head_in..tail_out` (count,
    /// bytes) and frames missing inside `cut_in..cut_out`, and the sums for the show.
    #[command(
        after_help = "Examples:\n  shotrouter cut waste reel1 --rules rules.yaml\n  shotrouter cut waste --rules rules.yaml --json | jq '.outside_bytes'\n\nA frame is a file under a watch root that a rule with a `shot` capture matches and whose\nname has a frame number: `--rules` is needed."
    )]
    Waste {
        /// The cut (default: the only one in the store).
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the rules and the store are.
        #[command(flatten)]
        place: CutPlace,
        /// Log verbosity.
        #[command(flatten)]
        verbosity: Verbosity,
    },
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    Rate::parse(text)
}
