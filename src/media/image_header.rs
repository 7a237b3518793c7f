//! Timecode and KeyKode read from an image file's own header: DPX (SMPTE 268M film header at
//! byte 1664, TV header at 1920, either byte order) and OpenEXR (`timeCode` and `keyCode`
//! attributes of the first header).
//!
//! ffprobe reads neither DPX KeyKode nor anything of EXR's, so verifying a stamped frame needs
//! this. Only the header is read (a few KiB), never the pixels; fields a writer left undefined
//! (all bits set, as SMPTE 268M asks, or blank text) read as absent.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// Which kind of image a header came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// SMPTE 268M DPX.
    Dpx,
    /// OpenEXR.
    Exr,
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageKind::Dpx => "DPX",
            ImageKind::Exr => "EXR",
        })
    }
}

/// What a header says about the frame's place in time and on film.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderCodes {
    /// The SMPTE timecode, when the header holds one.
    pub timecode: Option<HeaderTimecode>,
    /// The KeyKode, when the header holds one.
    pub keykode: Option<HeaderKeyKode>,
}

/// A SMPTE 12M timecode as stored (BCD fields and the drop-frame flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderTimecode {
    /// Hours, minutes, seconds, frames.
    pub fields: [u32; 4],
    /// The drop-frame flag (bit 6 of the frames byte).
    pub drop: bool,
}

impl HeaderTimecode {
    /// Decodes the packed BCD word (`HHMMSSFF` from the high byte down, SMPTE 12M flag bits
    /// masked off); `None` for the undefined value `0xFFFFFFFF` or a digit above 9.
    pub fn from_bcd(word: u32) -> Option<HeaderTimecode> {
        if word == u32::MAX {
            return None;
        }
        let digit = |shift: u32, mask: u32| {
            let d = (word >> shift) & mask;
            (d <= 9).then_some(d)
        };
        let field = |units: u32, tens_mask: u32| {
            Some(digit(units + 4, tens_mask)? * 10 + digit(units, 0xf)?)
        };
        Some(HeaderTimecode {
            fields: [
                field(24, 0x3)?,
                field(16, 0x7)?,
                field(8, 0x7)?,
                field(0, 0x3)?,
            ],
            drop: word & 0x40 != 0,
        })
    }
}

impl fmt::Display for HeaderTimecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [h, m, s, fr] = self.fields;
        let sep = if self.drop { ';' } else { ':' };
        write!(f, "{h:02}:{m:02}:{s:02}{sep}{fr:02}")
    }
}

/// A KeyKode as a header stores it: numbers only (no stock letters), the offset in
/// perforations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderKeyKode {
    /// Film manufacturer code.
    pub mfg: u32,
    /// Film type code.
    pub film_type: u32,
    /// The 6-digit roll prefix.
    pub prefix: u32,
    /// The key count.
    pub count: u32,
    /// Perforations from the key's zero-frame mark.
    pub perf_offset: u32,
    /// Perforations per frame (EXR only; DPX does not store it).
    pub perfs_per_frame: Option<u32>,
    /// Perforations per key (EXR only).
    pub perfs_per_count: Option<u32>,
}

impl HeaderKeyKode {
    /// As editorial writes it without the stock letters, `22 9012 1234+05` (perforations left
    /// over as `.p`), counting `perfs_per_frame` perforations to a frame.
    pub fn display(&self, perfs_per_frame: u32) -> String {
        let ppf = perfs_per_frame.max(1);
        let prefix = format!("{:06}", self.prefix);
        let mut text = format!(
            "{} {} {:04}+{:02}",
            &prefix[..2],
            &prefix[2..],
            self.count,
            self.perf_offset / ppf
        );
        if !self.perf_offset.is_multiple_of(ppf) {
            text.push_str(&format!(".{}", self.perf_offset % ppf));
        }
        text
    }
}

/// Why a header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageHeaderError {
    /// The file could not be opened or read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Neither DPX (`SDPX`/`XPDS`) nor OpenEXR magic.
    #[error("`{}` is neither a DPX nor an OpenEXR image", .0.display())]
    NotAnImage(std::path::PathBuf),
    /// The header ends early or an attribute runs past it.
    #[error("`{}` has a truncated {kind} header", path.display())]
    Truncated {
        /// The file.
        path: std::path::PathBuf,
        /// Its kind.
        kind: ImageKind,
    },
}

/// Most bytes read: a DPX header is 2048; EXR headers with many attributes stay well below.
const HEADER_LIMIT: u64 = 1 << 20;

/// The kind of image `path` is by its magic, without reading further; `None` for anything else.
pub fn kind_of(path: &Path) -> Option<ImageKind> {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .ok()?
        .read_exact(&mut magic)
        .ok()?;
    kind_of_magic(&magic)
}

fn kind_of_magic(magic: &[u8]) -> Option<ImageKind> {
    match magic.get(..4)? {
        b"SDPX" | b"XPDS" => Some(ImageKind::Dpx),
        [0x76, 0x2f, 0x31, 0x01] => Some(ImageKind::Exr),
        _ => None,
    }
}

/// Reads the timecode and KeyKode of the DPX or EXR image at `path`.
///
/// # Errors
/// The file cannot be read, is no DPX or EXR, or its header is cut short.
pub fn read(path: &Path) -> Result<(ImageKind, HeaderCodes), ImageHeaderError> {
    let io = |source| ImageHeaderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(HEADER_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let kind = kind_of_magic(&bytes).ok_or_else(|| ImageHeaderError::NotAnImage(path.into()))?;
    let codes = match kind {
        ImageKind::Dpx => parse_dpx(&bytes),
        ImageKind::Exr => parse_exr(&bytes),
    };
    codes.map(|c| (kind, c)).ok_or(ImageHeaderError::Truncated {
        path: path.to_path_buf(),
        kind,
    })
}

/// The film header (KeyKode) and TV header (timecode) of a DPX file's bytes.
pub fn parse_dpx(bytes: &[u8]) -> Option<HeaderCodes> {
    let big = bytes.get(..4)? == b"SDPX";
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    // ASCII digit fields; undefined ones are 0xFF or NUL filled.
    let digits = |at: usize, len: usize| -> Option<u32> {
        let field = bytes.get(at..at + len)?;
        if !field.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(field).ok()?.parse().ok()
    };
    bytes.get(..2048)?;
    let keykode = (|| {
        Some(HeaderKeyKode {
            mfg: digits(1664, 2)?,
            film_type: digits(1666, 2)?,
            perf_offset: digits(1668, 2)?,
            prefix: digits(1670, 6)?,
            count: digits(1676, 4)?,
            perfs_per_frame: None,
            perfs_per_count: None,
        })
    })();
    Some(HeaderCodes {
        timecode: u32_at(1920).and_then(HeaderTimecode::from_bcd),
        keykode,
    })
}

/// The `timeCode` and `keyCode` attributes of an OpenEXR file's first header.
pub fn parse_exr(bytes: &[u8]) -> Option<HeaderCodes> {
    let mut at = 8; // magic and version
    let mut codes = HeaderCodes::default();
    let cstr = |at: &mut usize| -> Option<&[u8]> {
        let len = bytes.get(*at..)?.iter().position(|&b| b == 0)?;
        let s = &bytes[*at..*at + len];
        *at += len + 1;
        Some(s)
    };
    loop {
        let name = cstr(&mut at)?;
        if name.is_empty() {
            return Some(codes);
        }
        let kind = cstr(&mut at)?;
        let size = i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        let value = bytes.get(at..at + usize::try_from(size).ok()?)?;
        at += value.len();
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(
                value.get(4 * i..4 * i + 4)?.try_into().ok()?,
            ))
        };
        match (name, kind) {
            (b"timeCode", b"timecode") => {
                codes.timecode = word(0).and_then(HeaderTimecode::from_bcd)
            }
            (b"keyCode", b"keycode") => {
                codes.keykode = Some(HeaderKeyKode {
                    mfg: word(0)?,
                    film_type: word(1)?,
                    prefix: word(2)?,
                    count: word(3)?,
                    perf_offset: word(4)?,
                    perfs_per_frame: Some(word(5)?),
                    perfs_per_count: Some(word(6)?),
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DPX header with the film and TV fields set, in either byte order.
    fn dpx(big: bool, timecode: u32, film: &[u8; 16]) -> Vec<u8> {
        let mut b = vec![0xffu8; 2048];
        b[..4].copy_from_slice(if big { b"SDPX" } else { b"XPDS" });
        b[1664..1680].copy_from_slice(film);
        let tc = if big {
            timecode.to_be_bytes()
        } else {
            timecode.to_le_bytes()
        };
        b[1920..1924].copy_from_slice(&tc);
        b
    }

    #[test]
    fn dpx_fields_read_in_both_byte_orders() {
        for big in [true, false] {
            let codes = parse_dpx(&dpx(big, 0x0100_4117, b"0122202290121234")).expect("whole");
            let tc = codes.timecode.expect("timecode");
            assert_eq!(tc.to_string(), "01:00:41:17", "big {big}");
            let kk = codes.keykode.expect("keykode");
            assert_eq!(
                (kk.mfg, kk.film_type, kk.perf_offset, kk.prefix, kk.count),
                (1, 22, 20, 229012, 1234)
            );
            assert_eq!(kk.display(4), "22 9012 1234+05");
        }
    }

    #[test]
    fn undefined_dpx_fields_are_absent_and_a_short_file_is_truncated() {
        let mut film = [0xffu8; 16];
        film[..4].copy_from_slice(b"0122");
        let codes = parse_dpx(&dpx(true, u32::MAX, &film)).expect("whole");
        assert_eq!(codes, HeaderCodes::default());
        assert_eq!(parse_dpx(&dpx(true, 0, &film)[..1000]), None);
    }

    #[test]
    fn timecode_flags_are_masked_and_drop_frame_is_kept() {
        // Drop-frame and colour-frame bits in the frames byte, field bit in the seconds byte.
        let tc = HeaderTimecode::from_bcd(0x0010_80c2).expect("valid");
        assert_eq!(tc.to_string(), "00:10:00;02");
        assert_eq!(
            HeaderTimecode::from_bcd(0x0000_001a),
            None,
            "a digit above 9"
        );
    }

    #[test]
    fn exr_attributes_are_found_among_others() {
        let mut b = vec![0x76, 0x2f, 0x31, 0x01, 2, 0, 0, 0];
        let mut attr = |name: &str, kind: &str, value: &[u8]| {
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(kind.as_bytes());
            b.push(0);
            b.extend_from_slice(&(value.len() as i32).to_le_bytes());
            b.extend_from_slice(value);
        };
        attr("compression", "compression", &[0]);
        let words = |w: &[u32]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>();
        attr(
            "keyCode",
            "keycode",
            &words(&[1, 22, 229012, 1234, 20, 4, 64]),
        );
        attr("timeCode", "timecode", &words(&[0x0000_4117, 0]));
        b.push(0);
        let codes = parse_exr(&b).expect("whole");
        assert_eq!(
            codes.timecode.map(|t| t.to_string()).as_deref(),
            Some("00:00:41:17")
        );
        let kk = codes.keykode.expect("keykode");
        assert_eq!(
            (kk.perfs_per_frame, kk.perfs_per_count),
            (Some(4), Some(64))
        );
        assert_eq!(
            parse_exr(&b[..b.len() - 5]),
            None,
            "cut inside an attribute"
        );
    }
}
