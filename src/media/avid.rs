//! Avid DNxHD/DNxHR by the names editorial uses (`DNxHD 175x` at 23.976, `DNxHR HQX`), turned
//! into what ffmpeg needs: `-b:v`, `-pix_fmt` and `-profile:v`.
//!
//! For DNxHD ffmpeg picks a CID from size, bit depth and `-b:v` alone and never looks at the
//! frame rate, so the Avid name (whose number is the real bit rate at one rate) must be mapped
//! here. Every answer is checked against ffmpeg 5.1's measured accept grids
//! (`tests/data/dnx*-accept-grid.csv`, embedded at build time): a combination ffmpeg rejects is
//! never handed out, and `220x` at 29.97 gets the `175M` ffmpeg takes for that CID.

use std::fmt;

use crate::media::timecode::Rate;

/// The DNxHD grid: size,scan,pix_fmt,fps,mbps,result,cid,frame_bytes.
const DNXHD_GRID: &str = include_str!("../../tests/data/dnxhd-accept-grid.csv");
/// The DNxHR grid: profile,pix_fmt,size,result,cid,frame_bytes,error.
const DNXHR_GRID: &str = include_str!("../../tests/data/dnxhr-accept-grid.csv");

/// The rates Avid publishes 1080p DNxHD names for.
const RATES: [&str; 6] = ["23.976", "24", "25", "29.97", "50", "59.94"];

/// 1080p DNxHD families: CID, pix_fmt, name suffix, the name's number at each of [`RATES`].
const DNXHD_1080P: &[(u32, &str, &str, [u32; 6])] = &[
    (1253, "yuv422p", "", [36, 36, 36, 45, 75, 90]),
    (1237, "yuv422p", "", [115, 115, 120, 145, 240, 290]),
    (1238, "yuv422p", "", [175, 175, 185, 220, 365, 440]),
    (1235, "yuv422p10le", "x", [175, 175, 185, 220, 365, 440]),
];

/// DNxHR names and ffmpeg's profile for each.
const DNXHR: &[(&str, &str)] = &[
    ("LB", "dnxhr_lb"),
    ("SQ", "dnxhr_sq"),
    ("HQ", "dnxhr_hq"),
    ("HQX", "dnxhr_hqx"),
    ("444", "dnxhr_444"),
];

/// The `{avid.*}` variables every `avid:` gives.
pub const VARIABLES: &[&str] = &["avid.pix_fmt", "avid.profile"];

/// What one Avid name at one rate is to ffmpeg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvidCodec {
    /// The name as written (`DNxHD 175x`).
    pub name: String,
    /// `-b:v` for DNxHD (`175M`); DNxHR takes its rate from the profile.
    pub bitrate: Option<String>,
    /// `-pix_fmt`.
    pub pix_fmt: String,
    /// `-profile:v`: `dnxhd`, or `dnxhr_hq` and its siblings.
    pub profile: String,
    /// The compression ID the encoder writes (1235, 1272...).
    pub cid: u32,
}

impl AvidCodec {
    /// The `{avid.*}` values, `{avid.bitrate}` only for DNxHD.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("avid.pix_fmt", self.pix_fmt.clone()),
            ("avid.profile", self.profile.clone()),
        ];
        if let Some(b) = &self.bitrate {
            out.push(("avid.bitrate", b.clone()));
        }
        out
    }
}

/// Why an Avid name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvidError {
    /// No such name.
    #[error("unknown Avid codec `{name}`; write `DNxHD <number>[x]` or `DNxHR LB|SQ|HQ|HQX|444`")]
    Unknown {
        /// As written.
        name: String,
    },
    /// A DNxHD name that does not exist at this rate (its number is the bit rate at one rate).
    #[error("`{name}` is not an Avid DNxHD name at {rate} fps; at {rate} fps: {}", valid.join(", "))]
    NotAtRate {
        /// As written.
        name: String,
        /// The rate asked for.
        rate: Rate,
        /// The names that exist at that rate.
        valid: Vec<String>,
    },
    /// A rate Avid publishes no DNxHD names for.
    #[error("Avid has no DNxHD names at {rate} fps (only {}); use DNxHR LB, SQ, HQ, HQX or 444", RATES.join(", "))]
    NoNamesAtRate {
        /// The rate asked for.
        rate: Rate,
    },
    /// The grid says ffmpeg refuses the combination (kept as a guard on the tables).
    #[error("ffmpeg rejects `{name}` ({pix_fmt}, any `-b:v` of CID {cid})")]
    Rejected {
        /// As written.
        name: String,
        /// Its pixel format.
        pix_fmt: String,
        /// Its CID.
        cid: u32,
    },
}

/// The rows of the DNxHD grid ffmpeg accepted at 1920x1080p for `pix_fmt`: (mbps, cid). The
/// grid is complete at 24 fps, and ffmpeg never reads the rate for DNxHD.
fn accepted_1080p(pix_fmt: &str) -> impl Iterator<Item = (u32, u32)> + '_ {
    DNXHD_GRID.lines().skip(1).filter_map(move |line| {
        let f: Vec<&str> = line.split(',').collect();
        let ok = f.len() >= 7
            && f[0] == "1920x1080"
            && f[1] == "p"
            && f[2] == pix_fmt
            && f[3] == "24"
            && f[5] == "OK";
        ok.then(|| Some((f[4].parse().ok()?, f[6].parse().ok()?)))
            .flatten()
    })
}

/// The CID ffmpeg wrote for `profile` with `pix_fmt`, when the DNxHR grid shows it accepted.
fn dnxhr_cid(profile: &str, pix_fmt: &str) -> Option<u32> {
    DNXHR_GRID.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split(',').collect();
        (f.len() >= 5 && f[0] == profile && f[1] == pix_fmt && f[3] == "OK")
            .then(|| f[4].parse().ok())
            .flatten()
    })
}

/// The DNxHD names Avid uses at the rate `RATES[index]`, in table order.
fn names_at(index: usize) -> Vec<String> {
    DNXHD_1080P
        .iter()
        .map(|(_, _, suffix, labels)| format!("DNxHD {}{suffix}", labels[index]))
        .collect()
}

/// Resolves an Avid name at a frame rate.
///
/// # Errors
/// An unknown name, a DNxHD name that does not exist at `rate`, or a rate without DNxHD names.
///
/// ```
/// use shotrouter::media::{avid, timecode::Rate};
/// let c = avid::resolve("DNxHD 220x", Rate::parse("29.97").unwrap()).unwrap();
/// assert_eq!((c.bitrate.as_deref(), c.pix_fmt.as_str()), (Some("175M"), "yuv422p10le"));
/// ```
pub fn resolve(name: &str, rate: Rate) -> Result<AvidCodec, AvidError> {
    let unknown = || AvidError::Unknown {
        name: name.to_string(),
    };
    let words: Vec<&str> = name.split_whitespace().collect();
    let [family, variant] = words.as_slice() else {
        return Err(unknown());
    };
    if family.eq_ignore_ascii_case("dnxhr") {
        let (_, profile) = DNXHR
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(variant))
            .ok_or_else(unknown)?;
        let pix_fmt = ["yuv422p", "yuv422p10le", "yuv444p10le"]
            .into_iter()
            .find(|p| dnxhr_cid(profile, p).is_some())
            .ok_or_else(unknown)?;
        return Ok(AvidCodec {
            name: name.to_string(),
            bitrate: None,
            pix_fmt: pix_fmt.to_string(),
            profile: profile.to_string(),
            cid: dnxhr_cid(profile, pix_fmt).unwrap_or_default(),
        });
    }
    if !family.eq_ignore_ascii_case("dnxhd") {
        return Err(unknown());
    }
    let (number, ten_bit) = match variant.strip_suffix(['x', 'X']) {
        Some(n) => (n, true),
        None => (*variant, false),
    };
    let number: u32 = number.parse().map_err(|_| unknown())?;
    let known_number = DNXHD_1080P
        .iter()
        .any(|(_, _, suffix, labels)| (suffix == &"x") == ten_bit && labels.contains(&number));
    if !known_number {
        return Err(unknown());
    }
    let index = RATES
        .iter()
        .position(|r| Rate::parse(r).is_ok_and(|known| known == rate))
        .ok_or(AvidError::NoNamesAtRate { rate })?;
    let (cid, pix_fmt, _, _) = DNXHD_1080P
        .iter()
        .find(|(_, _, suffix, labels)| (suffix == &"x") == ten_bit && labels[index] == number)
        .ok_or_else(|| AvidError::NotAtRate {
            name: name.to_string(),
            rate,
            valid: names_at(index),
        })?;
    // The name's own number when ffmpeg takes it for this CID, else any number it takes.
    let accepted: Vec<(u32, u32)> = accepted_1080p(pix_fmt).filter(|(_, c)| c == cid).collect();
    let mbps = accepted
        .iter()
        .find(|(m, _)| *m == number)
        .or(accepted.first())
        .map(|(m, _)| *m)
        .ok_or_else(|| AvidError::Rejected {
            name: name.to_string(),
            pix_fmt: pix_fmt.to_string(),
            cid: *cid,
        })?;
    Ok(AvidCodec {
        name: name.to_string(),
        bitrate: Some(format!("{mbps}M")),
        pix_fmt: pix_fmt.to_string(),
        profile: "dnxhd".to_string(),
        cid: *cid,
    })
}

impl fmt::Display for AvidCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (CID {}, {}", self.name, self.cid, self.pix_fmt)?;
        match &self.bitrate {
            Some(b) => write!(f, ", -b:v {b})"),
            None => write!(f, ", -profile:v {})", self.profile),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(name: &str, fps: &str) -> Result<AvidCodec, AvidError> {
        resolve(name, Rate::parse(fps).expect("rate"))
    }

    #[test]
    fn every_published_name_resolves_to_a_combination_the_grid_accepts() {
        for (index, fps) in RATES.iter().enumerate() {
            for (cid, pix_fmt, suffix, labels) in DNXHD_1080P {
                let name = format!("DNxHD {}{suffix}", labels[index]);
                let c = at(&name, fps).unwrap_or_else(|e| panic!("{name} at {fps}: {e}"));
                let mbps: u32 = c
                    .bitrate
                    .as_deref()
                    .unwrap()
                    .trim_end_matches('M')
                    .parse()
                    .unwrap();
                assert!(
                    accepted_1080p(pix_fmt).any(|row| row == (mbps, *cid)),
                    "{name} at {fps}: {c}"
                );
            }
        }
    }

    #[test]
    fn names_resolve_as_the_cookbook_measured() {
        let cases = [
            ("DNxHD 175x", "23.976", "175M", "yuv422p10le", 1235),
            ("DNxHD 220x", "29.97", "175M", "yuv422p10le", 1235),
            ("DNxHD 36", "24", "36M", "yuv422p", 1253),
            ("DNxHD 145", "29.97", "145M", "yuv422p", 1237),
            ("dnxhd 440", "59.94", "440M", "yuv422p", 1238),
        ];
        for (name, fps, bitrate, pix_fmt, cid) in cases {
            let c = at(name, fps).expect(name);
            assert_eq!(
                (
                    c.bitrate.as_deref(),
                    c.pix_fmt.as_str(),
                    c.cid,
                    c.profile.as_str()
                ),
                (Some(bitrate), pix_fmt, cid, "dnxhd"),
                "{name}"
            );
        }
        let hqx = at("DNxHR HQX", "48").expect("any rate");
        assert_eq!(
            (
                hqx.bitrate,
                hqx.pix_fmt.as_str(),
                hqx.profile.as_str(),
                hqx.cid
            ),
            (None, "yuv422p10le", "dnxhr_hqx", 1271)
        );
        assert_eq!(at("DNxHR 444", "24").expect("444").pix_fmt, "yuv444p10le");
    }

    #[test]
    fn names_that_do_not_exist_are_refused_with_the_valid_ones() {
        assert_eq!(
            at("DNxHD 175", "25").unwrap_err().to_string(),
            "`DNxHD 175` is not an Avid DNxHD name at 25 fps; at 25 fps: DNxHD 36, DNxHD 120, DNxHD 185, DNxHD 185x"
        );
        assert!(matches!(
            at("DNxHD 175x", "48"),
            Err(AvidError::NoNamesAtRate { .. })
        ));
        for bad in ["DNxHD 100", "DNxHD 36x", "ProRes 422", "DNxHR XQ", "DNxHD"] {
            assert!(
                matches!(at(bad, "24"), Err(AvidError::Unknown { .. })),
                "{bad}"
            );
        }
    }
}
