//! `shotrouter conform`: clap types of the conform command. What it does is `app::conform`'s.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::app::cli::{CutPlace, Verbosity};

/// Which product of a shot a conform takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PickArg {
    /// The highest version in the file name (`_v003` over `_v002`), else the latest published.
    Latest,
    /// The approved version (not supported yet: the store keeps no approvals).
    Approved,
}

/// The conformed movie's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodecArg {
    /// ProRes 422 HQ, 10-bit 4:2:2: a review movie.
    Prores,
    /// FFV1, lossless in the products' own pixel format: every frame the product's, bit for bit.
    Ffv1,
}

/// `shotrouter conform [NAME] --from RULE --output FILE.mov`.
#[derive(Debug, clap::Args)]
pub struct ConformArgs {
    /// The cut (default: the only one in the store); its latest revision is conformed.
    pub name: Option<String>,
    /// The rule whose published products are the shots (e.g. the review-movie rule).
    #[arg(long = "from", value_name = "RULE")]
    pub rule: String,
    /// The movie to write (QuickTime); `FILE.otio` of what was used is written beside it.
    #[arg(long, value_name = "FILE.mov")]
    pub output: PathBuf,
    /// Where the `.otio` goes (default: beside `--output`). The watcher's conform job writes
    /// the movie to its temp output and the `.otio` beside the final movie.
    #[arg(long, value_name = "FILE.otio", hide = true)]
    pub otio: Option<PathBuf>,
    /// Which product of each shot.
    #[arg(long, value_enum, default_value = "latest")]
    pub pick: PickArg,
    /// The movie's codec.
    #[arg(long, value_enum, default_value = "prores")]
    pub codec: CodecArg,
    /// Print what was made as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where the rules and the store are.
    #[command(flatten)]
    pub place: CutPlace,
    /// Log verbosity.
    #[command(flatten)]
    pub verbosity: Verbosity,
}
