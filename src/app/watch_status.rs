//! `shotrouter status --watch`: the status again every `--every` until SIGINT or SIGTERM
//! (exit 0). On a terminal each report replaces the previous one in place (the cursor goes
//! back up over the lines it printed, counting the ones the terminal wrapped); into a pipe or
//! file each report is a new block after a blank line, so a log of the night reads in order.

use crate::store::Location;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::app::human::local_time_ms;
use crate::app::status;
use crate::error::Error;
use crate::store;

/// Repeats `status` until a signal stops it.
///
/// # Errors
/// No store at the start (a store that fails later is reported in the block and retried), or
/// signals that cannot be caught.
pub fn run(store: &Location, every: Duration) -> Result<ExitCode, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(Error::io(format!("cannot catch signal {signal}")))?;
    }
    // A missing store is an error to act on, not a block to repeat.
    status::status_report(store)?;
    let terminal = std::io::stdout().is_terminal();
    let mut shown = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = store::now_ms();
        let body = match status::status_report(store) {
            Ok(report) => status::status_text(&report),
            Err(e) => format!("cannot read the store (trying again): {e}\n"),
        };
        let block = format!(
            "{} — every {}, Ctrl-C to stop\n{body}",
            local_time_ms(now, now),
            humantime::format_duration(every)
        );
        let mut text = String::new();
        if terminal && shown > 0 {
            // Up over the last report, then clear from there to the end of the screen.
            text.push_str(&format!("\x1b[{shown}A\r\x1b[J"));
        } else if shown > 0 {
            text.push('\n');
        }
        text.push_str(&block);
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The reader went away (`| head`): nothing is left to show.
            break;
        }
        shown = screen_rows(&block);
        let until = Instant::now() + every;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50).min(every));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many terminal rows `text` takes: long lines wrap at the terminal's width.
fn screen_rows(text: &str) -> usize {
    let width = crate::app::table::width().unwrap_or(u16::MAX).max(1) as usize;
    text.lines()
        .map(|line| visible_chars(line).div_ceil(width).max(1))
        .sum()
}

/// Characters a line shows, colour escapes (`ESC [ ... m`) left out.
fn visible_chars(line: &str) -> usize {
    let mut count = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::visible_chars;

    #[test]
    fn colour_escapes_take_no_room() {
        assert_eq!(visible_chars("\x1b[31mfailed\x1b[0m 3"), 8);
    }
}
