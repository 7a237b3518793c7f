//! KeyKode (film edge code) and feet+frames, for film-originated shots.
//!
//! ffmpeg can neither read nor write KeyKode, so shotrouter computes it and hands it to the
//! commands as text. A KeyKode is kept as (prefix, count, perforation offset): the absolute
//! perforation `count × perfs_per_key + offset` moves by `perfs_per_frame` per frame, which
//! handles 3-perf (where keys do not fall on frame boundaries) without special cases.
//! Displayed as editorial writes it: `KU 22 9012 1234+05`, with `.p` for leftover perforations.

use std::fmt;

/// A film gauge and pulldown: how many perforations a frame and a key interval span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilmFormat {
    /// 35 mm, 4 perforations per frame: 16 frames per key (one foot).
    Mm35Perf4,
    /// 35 mm, 3 perforations per frame: 64 frames per 3 keys.
    Mm35Perf3,
    /// 35 mm, 2 perforations per frame (Techniscope): 32 frames per key.
    Mm35Perf2,
    /// 35 mm, 8 perforations per frame (VistaVision): 8 frames per key.
    Mm35Perf8,
    /// 16 mm, 1 perforation per frame: a key every 20 frames (6 inches).
    Mm16,
    /// 65 mm 5-perf, 120-perforation key repeat (SMPTE 313).
    Mm65Perf5Key120,
    /// 65 mm 5-perf, 80-perforation key repeat (SMPTE 270).
    Mm65Perf5Key80,
}

/// The names accepted in `format:`, and their formats.
pub const FORMAT_NAMES: &[(&str, FilmFormat)] = &[
    ("35mm-4perf", FilmFormat::Mm35Perf4),
    ("35mm-3perf", FilmFormat::Mm35Perf3),
    ("35mm-2perf", FilmFormat::Mm35Perf2),
    ("35mm-8perf", FilmFormat::Mm35Perf8),
    ("16mm", FilmFormat::Mm16),
    ("65mm-5perf-120", FilmFormat::Mm65Perf5Key120),
    ("65mm-5perf-80", FilmFormat::Mm65Perf5Key80),
];

impl FilmFormat {
    /// Parses a `format:` name.
    ///
    /// # Errors
    /// The list of known names.
    pub fn parse(name: &str) -> Result<FilmFormat, String> {
        FORMAT_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                format!(
                    "unknown film format `{name}`; known: {}",
                    FORMAT_NAMES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// Perforations per frame.
    pub fn perfs_per_frame(self) -> i64 {
        match self {
            FilmFormat::Mm35Perf4 => 4,
            FilmFormat::Mm35Perf3 => 3,
            FilmFormat::Mm35Perf2 => 2,
            FilmFormat::Mm35Perf8 => 8,
            FilmFormat::Mm16 => 1,
            FilmFormat::Mm65Perf5Key120 | FilmFormat::Mm65Perf5Key80 => 5,
        }
    }

    /// Perforations between two key numbers.
    pub fn perfs_per_key(self) -> i64 {
        match self {
            FilmFormat::Mm16 => 20,
            FilmFormat::Mm65Perf5Key120 => 120,
            FilmFormat::Mm65Perf5Key80 => 80,
            _ => 64,
        }
    }

    /// Editorial feet+frames of frame `n` counted from `0+00`; `None` for 65 mm, which
    /// editorial does not count in feet.
    ///
    /// 16 mm counts in 20-frame units (Avid's "16.20"). In 3-perf a frame belongs to the foot
    /// holding its last perforation, and `.P` says how many perforations of the foot's first
    /// frame lie in the previous foot.
    pub fn feet_frames(self, n: i64) -> Option<String> {
        let per_foot = match self {
            FilmFormat::Mm35Perf3 => {
                let foot = (3 * n + 2).div_euclid(64);
                // ceil((64·foot − 2) / 3): the first frame whose last perforation is in the foot.
                let first = (64 * foot).div_euclid(3);
                let perfs_before = 64 * foot - 3 * first;
                return Some(format!("{foot}+{:02}.{perfs_before}", n - first));
            }
            FilmFormat::Mm35Perf4 => 16,
            FilmFormat::Mm35Perf2 => 32,
            FilmFormat::Mm35Perf8 => 8,
            FilmFormat::Mm16 => 20,
            FilmFormat::Mm65Perf5Key120 | FilmFormat::Mm65Perf5Key80 => return None,
        };
        Some(format!(
            "{}+{:02}",
            n.div_euclid(per_foot),
            n.rem_euclid(per_foot)
        ))
    }
}

/// One frame's KeyKode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyKode {
    /// Manufacturer and stock letters (`KU`), or their two-digit codes.
    pub stock: String,
    /// The 6-digit roll prefix.
    pub prefix: String,
    /// The key count, 0–9999.
    pub count: i64,
    /// Perforations from the key's zero-frame mark.
    pub perf_offset: i64,
    /// The film format, for display and arithmetic.
    pub format: FilmFormat,
}

impl KeyKode {
    /// Parses `KU 22 9012 1234+05` (also `KU 229012 1234+05` and `+00.2` for extra perfs).
    ///
    /// # Errors
    /// What is malformed.
    pub fn parse(text: &str, format: FilmFormat) -> Result<KeyKode, String> {
        let bad = |why: &str| {
            format!(
                "`{text}` is not a KeyKode ({why}); write it as editorial does, e.g. `KU 22 9012 1234+05`"
            )
        };
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let (stock, prefix, tail) = match tokens.as_slice() {
            [stock, a, b, tail] => (*stock, format!("{a}{b}"), *tail),
            [stock, prefix, tail] => (*stock, prefix.to_string(), *tail),
            _ => return Err(bad("expected stock, prefix, then count+frames")),
        };
        if stock.len() != 2 || !stock.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("the stock is two letters, like `KU`"));
        }
        if prefix.len() != 6 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the prefix has 6 digits"));
        }
        let (count, offset) = tail
            .split_once('+')
            .ok_or_else(|| bad("no `+` between count and frames"))?;
        let (frames, perfs) = match offset.split_once('.') {
            Some((f, p)) => (f, Some(p)),
            None => (offset, None),
        };
        let number = |s: &str, what: &str| -> Result<i64, String> {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map_err(|_| bad(what))
            } else {
                Err(bad(what))
            }
        };
        let count = number(count, "the count has 4 digits")?;
        if count > 9999 {
            return Err(bad("the count has 4 digits"));
        }
        let frames = number(frames, "frames after `+`")?;
        let perfs = perfs
            .map(|p| number(p, "perforations after `.`"))
            .transpose()?;
        let ppf = format.perfs_per_frame();
        let perf_offset = frames * ppf + perfs.unwrap_or(0);
        if perfs.is_some_and(|p| p >= ppf) || perf_offset >= format.perfs_per_key() {
            return Err(format!(
                "`{text}`: the offset is past the next key (a key holds {} perforations, {} per frame)",
                format.perfs_per_key(),
                ppf
            ));
        }
        Ok(KeyKode {
            stock: stock.to_string(),
            prefix,
            count,
            perf_offset,
            format,
        })
    }

    /// The KeyKode `frames` frames later (or earlier, when negative).
    ///
    /// # Errors
    /// When the count would leave 0–9999: what happens to the prefix then depends on the maker.
    pub fn offset(&self, frames: i64) -> Result<KeyKode, String> {
        let per_key = self.format.perfs_per_key();
        let perf = self.count * per_key + self.perf_offset + frames * self.format.perfs_per_frame();
        let count = perf.div_euclid(per_key);
        if !(0..=9999).contains(&count) {
            return Err(format!(
                "KeyKode {self} moved by {frames} frames leaves the key count range 0000–9999"
            ));
        }
        Ok(KeyKode {
            count,
            perf_offset: perf.rem_euclid(per_key),
            ..self.clone()
        })
    }
}

impl fmt::Display for KeyKode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ppf = self.format.perfs_per_frame();
        write!(
            f,
            "{} {} {} {:04}+{:02}",
            self.stock,
            &self.prefix[..2],
            &self.prefix[2..],
            self.count,
            self.perf_offset / ppf
        )?;
        match self.perf_offset % ppf {
            0 => Ok(()),
            p => write!(f, ".{p}"),
        }
    }
}

/// `keykode: {start, format, at_frame, mfg, type}`: the KeyKode of a given frame number.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyKodeSpec {
    /// The KeyKode of `at_frame`.
    pub start: KeyKode,
    /// The frame number that carries `start`; `None`: each job's first frame does.
    pub at_frame: Option<i64>,
    /// Manufacturer and film-type codes (`mfg:`, `type:`), which DPX and EXR headers store in
    /// place of the stock letters; the letter-to-number mapping is the maker's, so the rules
    /// file gives them.
    pub codes: Option<StockCodes>,
}

/// The numeric manufacturer and film-type codes of a stock (Kodak is 1 in the barcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockCodes {
    /// Manufacturer code, 0–99.
    pub mfg: u8,
    /// Film-type code, 0–99.
    pub film_type: u8,
}

/// The `{keykode.*}` parts of a KeyKode, the numbers a DPX or EXR header stores.
pub const PART_VARIABLES: &[&str] = &[
    "keykode.prefix",
    "keykode.count",
    "keykode.perf_offset",
    "keykode.perfs_per_frame",
    "keykode.perfs_per_count",
];

/// The `{keykode.*}` parts that exist only when `keykode:` gives `mfg:` and `type:`.
pub const CODE_VARIABLES: &[&str] = &["keykode.mfg", "keykode.type"];

impl KeyKode {
    /// The values of [`PART_VARIABLES`], then of [`CODE_VARIABLES`] when `codes` are known, as
    /// plain decimal numbers (what `oiiotool --attrib:type=keycode` takes).
    pub fn parts(&self, codes: Option<StockCodes>) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("keykode.prefix", self.prefix.clone()),
            ("keykode.count", self.count.to_string()),
            ("keykode.perf_offset", self.perf_offset.to_string()),
            (
                "keykode.perfs_per_frame",
                self.format.perfs_per_frame().to_string(),
            ),
            (
                "keykode.perfs_per_count",
                self.format.perfs_per_key().to_string(),
            ),
        ];
        if let Some(c) = codes {
            out.push(("keykode.mfg", c.mfg.to_string()));
            out.push(("keykode.type", c.film_type.to_string()));
        }
        out
    }
}

// By hand so a spec without `codes` prints as it did before they existed: rules hash this text.
impl fmt::Debug for KeyKodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("KeyKodeSpec");
        s.field("start", &self.start)
            .field("at_frame", &self.at_frame);
        if let Some(codes) = &self.codes {
            s.field("codes", codes);
        }
        s.finish()
    }
}

impl KeyKodeSpec {
    /// The KeyKode of frame number `frame` in a job whose first frame is `first`.
    ///
    /// # Errors
    /// See [`KeyKode::offset`].
    pub fn at(&self, frame: i64, first: i64) -> Result<KeyKode, String> {
        self.start.offset(frame - self.at_frame.unwrap_or(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vector_matches() {
        let text = include_str!("../../tests/data/keykode-vectors.csv");
        let mut checked = 0;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let format = FilmFormat::parse(f[1]).unwrap();
            let frames: i64 = f[3].parse().unwrap();
            match f[0] {
                "keykode" => {
                    let start = KeyKode::parse(f[2], format).unwrap();
                    let moved = start.offset(frames).unwrap();
                    assert_eq!(moved.to_string(), f[4], "{line}");
                    assert_eq!(moved.perf_offset.to_string(), f[5], "{line}");
                    assert_eq!(KeyKode::parse(f[4], format).unwrap(), moved, "{line}");
                }
                "feet+frames" => {
                    assert_eq!(format.feet_frames(frames).as_deref(), Some(f[4]), "{line}");
                }
                other => panic!("unknown kind {other}"),
            }
            checked += 1;
        }
        assert!(checked >= 58, "{checked}");
    }

    #[test]
    fn malformed_keykodes_and_formats_are_refused() {
        let f = FilmFormat::Mm35Perf4;
        assert!(KeyKode::parse("KU 22 9012 1234", f).is_err());
        assert!(KeyKode::parse("KU 22 901 1234+05", f).is_err());
        assert!(KeyKode::parse("KU 22 9012 1234+16", f).is_err());
        assert!(KeyKode::parse("KU 22 9012 12345+00", f).is_err());
        assert!(KeyKode::parse("KU 229012 1234+05", f).is_ok());
        assert!(
            FilmFormat::parse("35mm")
                .unwrap_err()
                .contains("35mm-4perf")
        );
        let end = KeyKode::parse("KU 22 9012 9999+15", f).unwrap();
        assert!(end.offset(1).is_err());
    }
}
