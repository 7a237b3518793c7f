//! Verification: a product is compared with what the rule's `verify:` asks for before it is
//! published.
//!
//! ffmpeg exits 0 after writing a short movie (a gap in the frames), a movie without timecode
//! (a label it could not parse) or the wrong pixel format, so exit status proves nothing. Each
//! check compares one property ffprobe reports with the job's expectation; a product that
//! fails is not published and the job fails naming every difference. The timecode and KeyKode
//! of a DPX or EXR product are read from its own header instead (ffprobe reads neither). The
//! expectations arrive already expanded (route binds them); ffprobe itself is `media::probe`,
//! the header reader `media::image_header`. With `decode: true`, a product that passes is also
//! decoded frame by frame (`media::decode`): a header can be right over broken frames.

use crate::deliver::{DeliverError, Product, Step, StepContext};
use crate::media::decode;
use crate::media::image_header::{self, HeaderCodes};
use crate::media::probe::{self, Probed};
use crate::media::timecode::Rate;

/// The step that reads the product back with ffprobe and compares it with the expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    /// What this job's product must be.
    pub expected: Expectations,
}

/// `22 9012 1234+05` of `KU 22 9012 1234+05`: the part of a KeyKode a header stores as digits.
fn without_stock(keykode: &str) -> &str {
    let keykode = keykode.trim();
    match keykode.split_once(char::is_whitespace) {
        Some((first, rest)) if !first.bytes().all(|b| b.is_ascii_digit()) => rest.trim_start(),
        _ => keykode,
    }
}

impl Step for Verify {
    fn name(&self) -> &'static str {
        "verify"
    }

    fn run(&self, product: &mut Product, cx: &mut StepContext<'_>) -> Result<(), DeliverError> {
        // No product at all is publishing's to report: "did not write" says more than ffprobe.
        let temp = product.temp_access();
        if !temp.exists() {
            return Ok(());
        }
        // A DPX or EXR product's timecode and KeyKode are read from its header (ffprobe reads
        // no KeyKode and nothing of EXR's); everything else is ffprobe's.
        let (from_header, from_probe) = match image_header::kind_of(&temp) {
            Some(_) => self.expected.split_header_checks(),
            None => (Expectations::default(), self.expected.clone()),
        };
        let mut seen = Vec::new();
        let mut differences = Vec::new();
        if !from_header.checks.is_empty() {
            match image_header::read(&temp) {
                Ok((kind, codes)) => {
                    differences.extend(from_header.header_differences(&codes));
                    seen.push(format!(
                        "{kind} header {}",
                        show_codes(&codes, self.expected.perfs_per_frame)
                    ));
                }
                Err(e) => differences.push(e.to_string()),
            }
        }
        // ffprobe also runs when nothing else would: a product it cannot read is no product.
        if !from_probe.checks.is_empty() || from_header.checks.is_empty() {
            match probe::probe(&temp, "the product") {
                Ok(probed) => {
                    differences.extend(from_probe.differences(&probed));
                    seen.push(probed.to_string());
                }
                Err(reason) => differences.push(reason),
            }
        }
        // Only a product whose header is right is decoded: a wrong one is refused already,
        // and decoding costs the product's whole length.
        if self.expected.decode && differences.is_empty() {
            match decode::decode(&temp) {
                Ok(()) => seen.push("every frame decodes".into()),
                Err(reason) => differences.push(reason),
            }
        }
        if differences.is_empty() {
            cx.note(format!("== verified: {}", seen.join("; ")));
            return Ok(());
        }
        let reason = differences.join("; ");
        cx.note(format!("== verification failed, not published: {reason}"));
        Err(DeliverError::Verify(reason))
    }
}

/// `timecode 01:00:41:17, keykode 22 9012 1234+05 (mfg 1, type 22)`, for the job log; a DPX
/// header's perforation offset is shown in frames of the rule's film format.
fn show_codes(codes: &HeaderCodes, perfs_per_frame: Option<u32>) -> String {
    let tc = codes
        .timecode
        .map_or_else(|| "none".to_string(), |t| t.to_string());
    let kk = codes.keykode.map_or_else(
        || "none".to_string(),
        |k| {
            format!(
                "{} (mfg {}, type {})",
                k.display(k.perfs_per_frame.or(perfs_per_frame).unwrap_or(1)),
                k.mfg,
                k.film_type
            )
        },
    );
    format!("timecode {tc}, keykode {kk}")
}

/// What one job's product must be.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Expectations {
    /// (key, expected value).
    pub checks: Vec<(String, String)>,
    /// Perforations per frame of the rule's film format: turns a header's perforation offset
    /// into the frames an expected KeyKode is written in (DPX does not store it).
    pub perfs_per_frame: Option<u32>,
    /// The rule's stock codes (manufacturer, film type), when `keykode:` gives them: a header's
    /// KeyKode must carry the same.
    pub stock_codes: Option<(u32, u32)>,
    /// `decode: true`: ffmpeg must decode every frame of the product.
    #[serde(default)]
    pub decode: bool,
}

/// The checks a DPX or EXR header answers.
const HEADER_KEYS: &[&str] = &["timecode", "keykode"];

impl Expectations {
    /// (checks the image header answers, the rest).
    fn split_header_checks(&self) -> (Expectations, Expectations) {
        let (header, rest) = self
            .checks
            .iter()
            .cloned()
            .partition(|(key, _)| HEADER_KEYS.contains(&key.as_str()));
        let with = |checks| Expectations {
            checks,
            perfs_per_frame: self.perfs_per_frame,
            stock_codes: self.stock_codes,
            decode: false,
        };
        (with(header), with(rest))
    }

    /// Every difference between an image header's codes and the expectations. An expected
    /// KeyKode's stock letters are not compared: headers store the stock as numbers.
    pub fn header_differences(&self, codes: &HeaderCodes) -> Vec<String> {
        let mut out = Vec::new();
        for (key, want) in &self.checks {
            match key.as_str() {
                "timecode" => {
                    let got = codes.timecode.map(|t| t.to_string());
                    if got.as_deref() != Some(want.trim()) {
                        out.push(format!(
                            "timecode in the header is {}, expected {want}",
                            got.as_deref().unwrap_or("none")
                        ));
                    }
                }
                "keykode" => {
                    let Some(k) = codes.keykode else {
                        out.push(format!("keykode in the header is none, expected {want}"));
                        continue;
                    };
                    let ppf = k.perfs_per_frame.or(self.perfs_per_frame).unwrap_or(1);
                    let got = k.display(ppf);
                    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
                    if squeeze(&got) != squeeze(without_stock(want)) {
                        out.push(format!(
                            "keykode in the header is {got}, expected {}",
                            without_stock(want)
                        ));
                    }
                    if let Some((mfg, film_type)) = self.stock_codes
                        && (k.mfg, k.film_type) != (mfg, film_type)
                    {
                        out.push(format!(
                            "keykode in the header is of stock mfg {}, type {}; the rule's is mfg {mfg}, type {film_type}",
                            k.mfg, k.film_type
                        ));
                    }
                    if let (Some(have), Some(rule)) = (k.perfs_per_frame, self.perfs_per_frame)
                        && have != rule
                    {
                        out.push(format!(
                            "keykode in the header counts {have} perforations per frame, the rule's film format {rule}"
                        ));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Every difference between `probed` and the expectations; empty when the product is right.
    pub fn differences(&self, probed: &Probed) -> Vec<String> {
        let mut out = Vec::new();
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
        for (key, want) in &self.checks {
            let (got, ok) = match key.as_str() {
                "frames" => {
                    let got = probed.frames.map(|n| n.to_string());
                    (show(&got), got.as_deref() == Some(want.trim()))
                }
                "width" | "height" => {
                    let got = if key == "width" {
                        probed.width
                    } else {
                        probed.height
                    };
                    let got = got.map(|n| n.to_string());
                    (show(&got), got.as_deref() == Some(want.trim()))
                }
                "fps" => {
                    let want_rate = Rate::parse(want).ok();
                    let got = probed.fps.map(|r| r.to_string());
                    (show(&got), want_rate.is_some() && probed.fps == want_rate)
                }
                "timecode" => (
                    show(&probed.timecode),
                    probed.timecode.as_deref() == Some(want.as_str()),
                ),
                "keykode" => (
                    "none (ffprobe reads no KeyKode; only a DPX or EXR product's header carries it)"
                        .to_string(),
                    false,
                ),
                "comment" => (
                    show(&probed.comment),
                    probed.comment.as_deref() == Some(want.as_str()),
                ),
                "codec" | "profile" | "pix_fmt" => {
                    let got = match key.as_str() {
                        "codec" => &probed.codec,
                        "profile" => &probed.profile,
                        _ => &probed.pix_fmt,
                    };
                    (
                        show(got),
                        got.as_deref()
                            .is_some_and(|g| g.eq_ignore_ascii_case(want.trim())),
                    )
                }
                _ => continue,
            };
            if !ok {
                out.push(format!("{key} is {got}, expected {want}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::probe::parse_probe;

    const MOV: &str = r#"{"streams":[{"codec_name":"prores","profile":"HQ","codec_type":"video","width":320,"height":180,"pix_fmt":"yuv422p10le","r_frame_rate":"24/1","time_base":"1/12288","duration_ts":98304,"nb_frames":"48","tags":{"timecode":"01:00:00:00"}},{"codec_type":"data","tags":{"timecode":"01:00:00:00"}}],"format":{}}"#;

    fn expect(pairs: &[(&str, &str)]) -> Expectations {
        Expectations {
            checks: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            perfs_per_frame: None,
            stock_codes: None,
            decode: false,
        }
    }

    #[test]
    fn reports_each_difference() {
        let mov = parse_probe(MOV.as_bytes()).unwrap();
        let ok = expect(&[
            ("frames", "48"),
            ("codec", "ProRes"),
            ("profile", "hq"),
            ("fps", "24"),
            ("width", "320"),
        ]);
        assert!(ok.differences(&mov).is_empty());
        let bad = expect(&[
            ("frames", "46"),
            ("timecode", "01:00:00:01"),
            ("pix_fmt", "yuv422p"),
        ]);
        assert_eq!(
            bad.differences(&mov),
            [
                "frames is 48, expected 46",
                "timecode is 01:00:00:00, expected 01:00:00:01",
                "pix_fmt is yuv422p10le, expected yuv422p"
            ]
        );
        let none = Probed::default();
        assert_eq!(
            expect(&[("timecode", "01:00:00:00")]).differences(&none),
            ["timecode is none, expected 01:00:00:00"]
        );
    }

    #[test]
    fn header_codes_are_compared_without_the_stock_letters() {
        use crate::media::image_header::{HeaderKeyKode, HeaderTimecode};
        let codes = HeaderCodes {
            timecode: HeaderTimecode::from_bcd(0x0100_4117),
            keykode: Some(HeaderKeyKode {
                mfg: 1,
                film_type: 22,
                prefix: 229012,
                count: 1234,
                perf_offset: 20,
                perfs_per_frame: None,
                perfs_per_count: None,
            }),
        };
        let mut want = expect(&[
            ("timecode", "01:00:41:17"),
            ("keykode", "KU 22 9012 1234+05"),
        ]);
        want.perfs_per_frame = Some(4);
        assert!(want.header_differences(&codes).is_empty());
        let mut wrong = expect(&[
            ("timecode", "01:00:41:18"),
            ("keykode", "KU 22 9012 1234+06"),
        ]);
        wrong.perfs_per_frame = Some(4);
        wrong.stock_codes = Some((1, 33));
        assert_eq!(
            wrong.header_differences(&codes),
            [
                "timecode in the header is 01:00:41:17, expected 01:00:41:18",
                "keykode in the header is 22 9012 1234+05, expected 22 9012 1234+06",
                "keykode in the header is of stock mfg 1, type 22; the rule's is mfg 1, type 33"
            ]
        );
        assert_eq!(
            want.header_differences(&HeaderCodes::default()),
            [
                "timecode in the header is none, expected 01:00:41:17",
                "keykode in the header is none, expected KU 22 9012 1234+05"
            ]
        );
    }

    #[test]
    fn a_missing_product_is_left_for_publish_to_report() {
        struct NoHooks;
        impl crate::deliver::DeliveryHooks for NoHooks {
            fn publishing(
                &mut self,
                _: &std::path::Path,
                _: crate::os::version::FileVersion,
            ) -> bool {
                true
            }
        }
        let mut product = Product {
            rule: "review".into(),
            temp_path: "/nonexistent/.sh010.t.mov".into(),
            final_path: "/nonexistent/sh010.mov".into(),
            published: None,
            extra_files: Vec::new(),
            dir: None,
        };
        let mut log = Vec::new();
        let step = Verify {
            expected: expect(&[("frames", "48")]),
        };
        let result = step.run(
            &mut product,
            &mut StepContext {
                log: &mut log,
                hooks: &mut NoHooks,
            },
        );
        assert_eq!((result, log.as_slice()), (Ok(()), b"".as_slice()));
    }
}
