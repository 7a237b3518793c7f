//! Verification: a product is compared with what the rule's `verify:` asks for before it is
//! published.
//!
//! ffmpeg exits 0 after writing a short movie (a gap in the frames), a movie without timecode
//! (a label it could not parse) or the wrong pixel format, so exit status proves nothing. Each
//! check compares one property ffprobe reports with the job's expectation; a product that
//! fails is not published and the job fails naming every difference. The expectations arrive
//! already expanded (route binds them); ffprobe itself is `media::probe`.

use crate::deliver::{DeliverError, Product, Step, StepContext};
use crate::media::probe::{self, Probed};
use crate::media::timecode::Rate;

/// The step that reads the product back with ffprobe and compares it with the expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verify {
    /// What this job's product must be.
    pub expected: Expectations,
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
        let result = probe::probe(&temp, "the product").map(|probed| {
            let differences = self.expected.differences(&probed);
            (probed, differences)
        });
        let reason = match result {
            Ok((probed, differences)) if differences.is_empty() => {
                cx.note(format!("== verified: {probed}"));
                return Ok(());
            }
            Ok((_, differences)) => differences.join("; "),
            Err(reason) => reason,
        };
        cx.note(format!("== verification failed, not published: {reason}"));
        Err(DeliverError::Verify(reason))
    }
}

/// What one job's product must be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// (key, expected value).
    pub checks: Vec<(String, String)>,
}

impl Expectations {
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
