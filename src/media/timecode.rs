//! SMPTE timecode: frame rates, drop-frame, and conversion in both directions.
//!
//! Written here rather than taken from a crate: the Rust timecode crates either do no arithmetic
//! or print drop-frame labels that do not exist. ffmpeg is no safety net either: it accepts
//! impossible labels and writes a file without timecode for malformed ones, exiting 0. So every
//! label shotrouter writes is built here, and every label a user gives is checked here at load.
//!
//! A timecode labels a frame. Each rate has a nominal integer rate (24000/1001 → 24); frames run
//! 0..nominal−1. Drop-frame exists only for multiples of 30000/1001 (29.97, 59.94): it skips
//! the first 2 (or 4) labels of every minute except each tenth minute, so the labels track the
//! wall clock. The day wraps at 24 hours.

use std::fmt;

/// A frame rate as an exact fraction, with the timecode counting that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Frames per `den` seconds.
    pub num: u32,
    /// Seconds per `num` frames.
    pub den: u32,
}

/// Rates shotrouter knows by their usual decimal names.
const NAMED_RATES: &[(&str, Rate)] = &[
    ("23.976", Rate::ntsc(24)),
    ("23.98", Rate::ntsc(24)),
    ("29.97", Rate::ntsc(30)),
    ("47.952", Rate::ntsc(48)),
    ("47.95", Rate::ntsc(48)),
    ("59.94", Rate::ntsc(60)),
    ("119.88", Rate::ntsc(120)),
];

/// The rates cameras, renders and deliveries use. Any whole rate up to 1000 and any fraction
/// parse (a rate is a rate), but one outside this list is more often a typo (`2.997`, `23`)
/// than a choice, so `check` warns about it.
const KNOWN_RATES: &[Rate] = &[
    Rate { num: 12, den: 1 },
    Rate { num: 15, den: 1 },
    Rate::ntsc(24),
    Rate { num: 24, den: 1 },
    Rate { num: 25, den: 1 },
    Rate::ntsc(30),
    Rate { num: 30, den: 1 },
    Rate::ntsc(48),
    Rate { num: 48, den: 1 },
    Rate { num: 50, den: 1 },
    Rate::ntsc(60),
    Rate { num: 60, den: 1 },
    Rate { num: 72, den: 1 },
    Rate { num: 96, den: 1 },
    Rate { num: 100, den: 1 },
    Rate::ntsc(120),
    Rate { num: 120, den: 1 },
];

impl Rate {
    /// Whether this is one of the rates in use in film, video and animation (12 to 120 fps).
    pub fn is_known(self) -> bool {
        KNOWN_RATES.contains(&self)
    }

    /// The known rates, as a rules file writes them, for messages.
    pub fn known_text() -> String {
        KNOWN_RATES
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `n`×1000/1001: the NTSC-family rate whose nominal rate is `n`.
    pub const fn ntsc(n: u32) -> Rate {
        Rate {
            num: n * 1000,
            den: 1001,
        }
    }

    /// Parses `24`, `23.976`, `29.97`, `30000/1001`, `24/1`.
    ///
    /// # Errors
    /// A message saying what is accepted.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "unknown frame rate `{text}`; use 23.976, 24, 25, 29.97, 30, 47.952, 48, 50, 59.94, 60, or a fraction like 30000/1001"
            )
        };
        if let Some((n, d)) = text.split_once('/') {
            let n: u32 = n.trim().parse().map_err(|_| bad())?;
            let d: u32 = d.trim().parse().map_err(|_| bad())?;
            if n == 0 || d == 0 {
                return Err(bad());
            }
            let g = gcd(n, d);
            return Ok(Rate {
                num: n / g,
                den: d / g,
            });
        }
        if let Some((_, rate)) = NAMED_RATES.iter().find(|(name, _)| *name == text) {
            return Ok(*rate);
        }
        match text.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(Rate { num: n, den: 1 }),
            _ => Err(bad()),
        }
    }

    /// The integer rate timecode counts in: 24 for 23.976, 30 for 29.97.
    pub fn nominal(self) -> u32 {
        (self.num + self.den / 2) / self.den
    }

    /// Whether drop-frame counting exists at this rate (multiples of 30000/1001).
    pub fn allows_drop(self) -> bool {
        self.den == 1001 && self.num.is_multiple_of(30000)
    }

    /// As ffmpeg writes it: `24/1`, `30000/1001`.
    pub fn fraction(self) -> String {
        format!("{}/{}", self.num, self.den)
    }

    /// The frame rate in frames per second.
    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match NAMED_RATES.iter().find(|(_, r)| r == self) {
            Some((name, _)) => f.write_str(name),
            None if self.den == 1 => write!(f, "{}", self.num),
            None => write!(f, "{}/{}", self.num, self.den),
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A timecode counting: rate plus drop-frame or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Counting {
    /// The frame rate.
    pub rate: Rate,
    /// Drop-frame labels (29.97 and 59.94 only).
    pub drop: bool,
}

impl Counting {
    /// A counting; drop-frame only where it exists.
    ///
    /// # Errors
    /// Drop-frame asked for at a rate that has none.
    pub fn new(rate: Rate, drop: bool) -> Result<Counting, String> {
        if drop && !rate.allows_drop() {
            return Err(format!(
                "drop-frame timecode exists only at 29.97 and 59.94 fps, not at {rate}"
            ));
        }
        Ok(Counting { rate, drop })
    }

    fn nominal(self) -> u64 {
        u64::from(self.rate.nominal())
    }

    /// Labels dropped at each dropping minute: 2 at 29.97, 4 at 59.94.
    fn dropped(self) -> u64 {
        if self.drop { self.nominal() / 15 } else { 0 }
    }

    /// Frames in 24 hours of labels: where the timecode wraps.
    pub fn frames_per_day(self) -> u64 {
        let nominal_day = 24 * 3600 * self.nominal();
        // 24 h have 1440 minutes, of which 144 are tenth minutes that drop nothing.
        nominal_day - self.dropped() * (1440 - 144)
    }

    /// The label of frame `frame` (counted from 00:00:00:00), wrapping at 24 hours.
    pub fn label(self, frame: i64) -> String {
        let day = self.frames_per_day() as i64;
        let mut n = frame.rem_euclid(day) as u64;
        let nominal = self.nominal();
        if self.drop {
            let d = self.dropped();
            let per_minute = 60 * nominal - d;
            let per_ten = 10 * per_minute + d;
            let tens = n / per_ten;
            let rest = n % per_ten;
            n += 9 * d * tens;
            if rest > d {
                n += d * ((rest - d) / per_minute);
            }
        }
        let ff = n % nominal;
        let total_seconds = n / nominal;
        let (hh, mm, ss) = (
            total_seconds / 3600,
            (total_seconds / 60) % 60,
            total_seconds % 60,
        );
        let sep = if self.drop { ';' } else { ':' };
        let width = (nominal - 1).to_string().len().max(2);
        format!("{hh:02}:{mm:02}:{ss:02}{sep}{ff:0width$}")
    }

    /// The frame number of a label: the inverse of [`Counting::label`].
    ///
    /// # Errors
    /// A malformed label, a field out of range, or a drop-frame label that does not exist.
    pub fn frame_of(self, label: &str) -> Result<i64, String> {
        let parsed = Label::parse(label)?;
        if parsed.drop != self.drop {
            return Err(if parsed.drop {
                format!(
                    "`{label}` is a drop-frame label (`;` before the frames) but this timecode is non-drop"
                )
            } else {
                format!(
                    "`{label}` is a non-drop label but this timecode is drop-frame; write `;` before the frames"
                )
            });
        }
        let nominal = self.nominal();
        let [hh, mm, ss, ff] = parsed.fields;
        if hh >= 24 {
            return Err(format!("`{label}`: hours must be 00–23"));
        }
        if mm >= 60 || ss >= 60 {
            return Err(format!("`{label}`: minutes and seconds must be 00–59"));
        }
        if ff >= nominal {
            return Err(format!(
                "`{label}`: frames must be 00–{:02} at {} fps",
                nominal - 1,
                self.rate
            ));
        }
        let minutes = hh * 60 + mm;
        let d = self.dropped();
        if self.drop && ss == 0 && ff < d && mm % 10 != 0 {
            return Err(format!(
                "`{label}` does not exist in drop-frame counting: frames 00–{:02} of every minute not divisible by ten are skipped",
                d - 1
            ));
        }
        let ndf = (minutes * 60 + ss) * nominal + ff;
        Ok((ndf - d * (minutes - minutes / 10)) as i64)
    }
}

/// A label split into its fields.
struct Label {
    fields: [u64; 4],
    drop: bool,
}

impl Label {
    /// `HH:MM:SS:FF`; `;` (or `.`) before FF marks drop-frame, as ffmpeg reads it.
    fn parse(text: &str) -> Result<Label, String> {
        let bad = || {
            format!("`{text}` is not a timecode; write HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)")
        };
        let bytes = text.as_bytes();
        if bytes.len() < 11 {
            return Err(bad());
        }
        let separator = bytes[8];
        let drop = match separator {
            b':' => false,
            b';' | b'.' => true,
            _ => return Err(bad()),
        };
        if bytes[2] != b':' || bytes[5] != b':' {
            return Err(bad());
        }
        let field = |range: std::ops::Range<usize>| -> Result<u64, String> {
            let s = text.get(range).ok_or_else(bad)?;
            if s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        Ok(Label {
            fields: [
                field(0..2)?,
                field(3..5)?,
                field(6..8)?,
                field(9..text.len())?,
            ],
            drop,
        })
    }

    /// Whether the label's separator asks for drop-frame.
    fn is_drop(text: &str) -> bool {
        text.as_bytes()
            .get(8)
            .is_some_and(|&b| b == b';' || b == b'.')
    }
}

/// `timecode: {fps, start, at_frame, drop}`: which label a given frame number carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimecodeSpec {
    /// Rate and drop-frame.
    pub counting: Counting,
    /// The frame count of `start`.
    pub start: i64,
    /// The frame number that carries `start`; `None`: each job's first frame does.
    pub at_frame: Option<i64>,
}

impl TimecodeSpec {
    /// Builds a spec from a rules file's values; `drop: None` takes drop-frame from `start`.
    ///
    /// # Errors
    /// A message for the field that is wrong.
    pub fn new(
        fps: &str,
        start: &str,
        at_frame: Option<i64>,
        drop: Option<bool>,
    ) -> Result<TimecodeSpec, TimecodeError> {
        let rate = Rate::parse(fps).map_err(TimecodeError::Fps)?;
        let label_drop = Label::is_drop(start);
        let drop = match drop {
            Some(false) if label_drop => {
                return Err(TimecodeError::Start(format!(
                    "`{start}` is a drop-frame label but `drop: false` is set"
                )));
            }
            Some(d) => d,
            None => label_drop,
        };
        let counting = Counting::new(rate, drop).map_err(|e| {
            if label_drop {
                TimecodeError::Start(format!("`{start}`: {e}"))
            } else {
                TimecodeError::Drop(e)
            }
        })?;
        // With `drop: true`, `01:00:00:00` is read as the drop-frame label `01:00:00;00`.
        // Only an ASCII label is rewritten (a byte index inside a character would panic); any
        // other text goes to `frame_of`, which refuses it.
        let normalized = if drop && !label_drop && start.len() > 8 && start.is_ascii() {
            format!("{};{}", &start[..8], &start[9..])
        } else {
            start.to_string()
        };
        let start = counting
            .frame_of(&normalized)
            .map_err(TimecodeError::Start)?;
        Ok(TimecodeSpec {
            counting,
            start,
            at_frame,
        })
    }

    /// The label of frame number `frame` in a job whose first frame is `first`.
    pub fn at(&self, frame: i64, first: i64) -> String {
        self.counting
            .label(self.start + (frame - self.at_frame.unwrap_or(first)))
    }
}

/// Which field of a `timecode:` mapping is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimecodeError {
    /// `fps`.
    Fps(String),
    /// `start`.
    Start(String),
    /// `drop`.
    Drop(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> Vec<(String, bool, i64, String)> {
        let text = include_str!("../../tests/data/timecode-vectors.csv");
        text.lines()
            .skip(1)
            .map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                (
                    f[0].to_string(),
                    f[1] == "1",
                    f[2].parse().unwrap(),
                    f[3].to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn every_vector_converts_both_ways() {
        let rows = vectors();
        assert!(rows.len() >= 100, "{} vectors", rows.len());
        for (fps, drop, frame, label) in rows {
            let counting = Counting::new(Rate::parse(&fps).unwrap(), drop).unwrap();
            assert_eq!(
                counting.label(frame),
                label,
                "{fps} drop={drop} frame {frame}"
            );
            assert_eq!(
                counting.frame_of(&label),
                Ok(frame),
                "{fps} drop={drop} {label}"
            );
        }
    }

    #[test]
    fn round_trips_every_frame_of_the_first_hours_and_wraps_at_a_day() {
        for (rate, drop) in [
            (Rate::ntsc(30), true),
            (Rate::ntsc(60), true),
            (Rate { num: 25, den: 1 }, false),
        ] {
            let c = Counting::new(rate, drop).unwrap();
            for frame in (0..300_000).chain(c.frames_per_day() - 5000..c.frames_per_day()) {
                let frame = frame as i64;
                assert_eq!(c.frame_of(&c.label(frame)), Ok(frame), "{rate} {frame}");
            }
            assert_eq!(c.label(c.frames_per_day() as i64), c.label(0));
            assert_eq!(c.label(-1), c.label(c.frames_per_day() as i64 - 1));
        }
        assert_eq!(
            Counting::new(Rate::ntsc(30), true)
                .unwrap()
                .frames_per_day(),
            2_589_408
        );
    }

    #[test]
    fn rates_are_read_as_numbers_names_and_fractions() {
        assert_eq!(Rate::parse("23.976"), Ok(Rate::ntsc(24)));
        assert_eq!(Rate::parse("30000/1001"), Ok(Rate::ntsc(30)));
        assert_eq!(Rate::parse("48/2"), Ok(Rate { num: 24, den: 1 }));
        assert_eq!(Rate::parse(" 25 "), Ok(Rate { num: 25, den: 1 }));
        assert!(Rate::parse("29.9").is_err());
        assert!(Rate::parse("0").is_err());
        assert_eq!(Rate::ntsc(60).to_string(), "59.94");
    }

    #[test]
    fn impossible_labels_are_refused() {
        let tc24 = Counting::new(Rate::parse("24").unwrap(), false).unwrap();
        assert!(tc24.frame_of("01:00:00:24").unwrap_err().contains("00–23"));
        assert!(tc24.frame_of("24:00:00:00").is_err());
        assert!(tc24.frame_of("1:0:0:0").is_err());
        assert!(tc24.frame_of("garbage").is_err());
        let df = Counting::new(Rate::ntsc(30), true).unwrap();
        assert!(
            df.frame_of("00:01:00;00")
                .unwrap_err()
                .contains("does not exist")
        );
        assert_eq!(df.frame_of("00:10:00;00"), Ok(17982));
        assert!(Counting::new(Rate::parse("25").unwrap(), true).is_err());
        assert!(Counting::new(Rate::parse("30").unwrap(), true).is_err());
        assert!(Counting::new(Rate::ntsc(24), true).is_err());
    }

    #[test]
    fn spec_maps_frame_numbers_to_labels() {
        let spec = TimecodeSpec::new("24", "01:00:00:00", Some(1001), None).unwrap();
        assert_eq!(spec.at(1001, 0), "01:00:00:00");
        assert_eq!(spec.at(1025, 0), "01:00:01:00");
        assert_eq!(spec.at(1000, 0), "00:59:59:23");
        let per_job = TimecodeSpec::new("25", "10:00:00:00", None, None).unwrap();
        assert_eq!(per_job.at(101, 101), "10:00:00:00");
        let df = TimecodeSpec::new("29.97", "00:59:59;28", Some(1), None).unwrap();
        assert_eq!(df.at(3, 0), "01:00:00;00");
        let forced = TimecodeSpec::new("30000/1001", "01:00:00:00", None, Some(true)).unwrap();
        assert_eq!(forced.at(0, 0), "01:00:00;00");
        assert!(matches!(
            TimecodeSpec::new("25", "01:00:00;00", None, None),
            Err(TimecodeError::Start(_))
        ));
        assert!(matches!(
            TimecodeSpec::new("25", "01:00:00:00", None, Some(true)),
            Err(TimecodeError::Drop(_))
        ));
        let wrap = TimecodeSpec::new("24", "23:59:59:23", Some(0), None).unwrap();
        assert_eq!(wrap.at(1, 0), "00:00:00:00");
    }

    #[test]
    fn a_non_ascii_start_under_drop_frame_is_an_error_not_a_panic() {
        for start in ["01:00:00é0", "é1:00:00:00", "01:00:00:0é"] {
            assert!(
                TimecodeSpec::new("29.97", start, None, Some(true)).is_err(),
                "{start}"
            );
        }
    }
}
