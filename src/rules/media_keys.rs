//! A rule's media keys: `sequence:` (frames gathered into one job), `timecode:` and `keykode:`
//! (a rule's own, else the file's top-level default), `avid:` (a DNxHD/DNxHR name at a rate),
//! `verify:` (what the product must be), and what `ale:` needs of them.
//!
//! Labels are checked here, at load, against `media`'s arithmetic: an impossible timecode or an
//! unknown film format never reaches ffmpeg, which would accept it and write a wrong file.

use crate::media::avid::{self, AvidCodec, AvidError};
use crate::media::keykode::{FilmFormat, KeyKode, KeyKodeSpec, StockCodes};
use crate::media::sequence::OnGaps;
use crate::media::timecode::{Rate, TimecodeError, TimecodeSpec};
use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::model::SequenceRule;
use crate::rules::verify::{KEYS as VERIFY_KEYS, VerifyRule};
use crate::rules::yaml::NodeKind;

impl Loader<'_> {
    /// `ale:` describes a clip: the frames of a sequence, published as a product, with the
    /// timecode that gives the ALE its `FPS`, `Start` and `End`.
    pub(super) fn ale_needs(
        &mut self,
        map: &MapReader<'_>,
        sequence: bool,
        output: bool,
        timecode: bool,
    ) {
        let lacks: Vec<&str> = [
            (!sequence).then_some("`sequence:`"),
            (!output).then_some("`output:`"),
            (!timecode).then_some("`timecode:` (on the rule or the file)"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !lacks.is_empty() {
            self.error(
                Diagnostic::new(
                    format!("`ale` needs {}", lacks.join(" and ")),
                    map.span_of("ale"),
                )
                .context(map.at("ale"))
                .hint("the ALE describes the sequence's product as one clip: its `Start`/`End` come from the timecode"),
            );
        }
    }

    /// `timecode: {fps, start, at_frame, drop}`.
    pub(super) fn timecode(&mut self, map: &MapReader<'_>) -> Option<TimecodeSpec> {
        let sub = self.submap(
            map,
            "timecode",
            "{fps: 24, start: \"01:00:00:00\", at_frame: 1001}",
        )?;
        let _ = self.unknown_keys(&sub, &["fps", "start", "at_frame", "drop"]);
        let fps = self.scalar(&sub, "fps");
        let start = self.scalar(&sub, "start");
        let at_frame = self.field::<i64>(&sub, "at_frame");
        let drop = self.field::<bool>(&sub, "drop");
        let (fps, start) = (fps?, start?);
        match TimecodeSpec::new(&fps, &start, at_frame, drop) {
            Ok(spec) => {
                self.known_rate(&sub, spec.counting.rate, &fps);
                Some(spec)
            }
            Err(e) => {
                let (key, message, hint) = match e {
                    TimecodeError::Fps(m) => ("fps", m, None),
                    TimecodeError::Start(m) => (
                        "start",
                        m,
                        Some("write HH:MM:SS:FF, or HH:MM:SS;FF for drop-frame at 29.97 or 59.94"),
                    ),
                    TimecodeError::Drop(m) => ("drop", m, None),
                };
                let mut d = Diagnostic::new(message, sub.span_of(key)).context(sub.at(key));
                if let Some(hint) = hint {
                    d = d.hint(hint);
                }
                self.error(d);
                None
            }
        }
    }

    /// `keykode: {start, format, at_frame, mfg, type}`.
    pub(super) fn keykode(&mut self, map: &MapReader<'_>) -> Option<KeyKodeSpec> {
        let sub = self.submap(
            map,
            "keykode",
            "{start: \"KU 22 9012 1234+05\", format: 35mm-4perf, at_frame: 1001}",
        )?;
        let _ = self.unknown_keys(&sub, &["start", "format", "at_frame", "mfg", "type"]);
        let start = self.scalar(&sub, "start");
        let format = self.scalar(&sub, "format").and_then(|name| {
            FilmFormat::parse(&name)
                .map_err(|e| {
                    self.error(Diagnostic::new(e, sub.span_of("format")).context(sub.at("format")))
                })
                .ok()
        });
        let at_frame = self.field::<i64>(&sub, "at_frame");
        let codes = self.stock_codes(&sub);
        let (start, format, codes) = (start?, format?, codes?);
        match KeyKode::parse(&start, format) {
            Ok(start) => Some(KeyKodeSpec {
                start,
                at_frame,
                codes,
            }),
            Err(e) => {
                self.error(Diagnostic::new(e, sub.span_of("start")).context(sub.at("start")));
                None
            }
        }
    }

    /// `mfg:` and `type:` of `keykode:`, both or neither, each 0–99; `None` when reported.
    fn stock_codes(&mut self, sub: &MapReader<'_>) -> Option<Option<StockCodes>> {
        let mut code = |key: &str| -> Result<Option<u8>, ()> {
            match self.field::<u8>(sub, key) {
                Some(n) if n <= 99 => Ok(Some(n)),
                Some(n) => {
                    self.error(
                        Diagnostic::new(
                            format!("`{key}` is a two-digit code, not `{n}`"),
                            sub.span_of(key),
                        )
                        .context(sub.at(key))
                        .hint("headers store 0–99, e.g. `mfg: 1` for Kodak"),
                    );
                    Err(())
                }
                None if sub.node.get(key).is_some() => Err(()),
                None => Ok(None),
            }
        };
        let (mfg, film_type) = (code("mfg"), code("type"));
        match (mfg.ok()?, film_type.ok()?) {
            (Some(mfg), Some(film_type)) => Some(Some(StockCodes { mfg, film_type })),
            (None, None) => Some(None),
            (given, _) => {
                let (have, lack) = if given.is_some() {
                    ("mfg", "type")
                } else {
                    ("type", "mfg")
                };
                self.error(
                    Diagnostic::new(format!("`{have}` without `{lack}`"), sub.span_of(have))
                        .context(sub.at(have))
                        .hint("give both codes of the stock, e.g. `mfg: 1, type: 22`"),
                );
                None
            }
        }
    }

    /// `sequence: true` or `sequence: {expect: 1001-1048, on_gaps: hold}`.
    pub(super) fn sequence(
        &mut self,
        map: &MapReader<'_>,
        known: &[String],
    ) -> Option<SequenceRule> {
        let node = map.node.get("sequence")?;
        if let NodeKind::Scalar { .. } = node.kind {
            return self
                .field::<bool>(map, "sequence")
                .and_then(|on| on.then(SequenceRule::default));
        }
        let sub = self.submap(map, "sequence", "{expect: 1001-1048, on_gaps: hold}")?;
        let _ = self.unknown_keys(&sub, &["expect", "on_gaps"]);
        let on_gaps = self.field::<OnGaps>(&sub, "on_gaps").unwrap_or_default();
        let expect = match sub.node.get("expect") {
            Some(node) => {
                let template = self.template(&sub, node, "expect", known)?;
                // A literal range is checked now; one built from variables when the job fires.
                if template.variables().next().is_none()
                    && let Err(e) = crate::media::sequence::parse_range(template.source())
                {
                    self.error(Diagnostic::new(e, node.span).context(sub.at("expect")));
                }
                Some(template)
            }
            None => None,
        };
        Some(SequenceRule { expect, on_gaps })
    }
}

impl Loader<'_> {
    /// `avid: {codec: "DNxHD 175x", fps: 23.976}`, resolved against ffmpeg's accept grids now,
    /// so a name ffmpeg or the Avid would reject never reaches a job.
    pub(super) fn avid(&mut self, map: &MapReader<'_>) -> Option<AvidCodec> {
        let sub = self.submap(map, "avid", "{codec: \"DNxHD 175x\", fps: 23.976}")?;
        let _ = self.unknown_keys(&sub, &["codec", "fps"]);
        let codec = self.scalar(&sub, "codec");
        let fps = self.scalar(&sub, "fps");
        let (codec, fps) = (codec?, fps?);
        let rate = match Rate::parse(&fps) {
            Ok(rate) => rate,
            Err(e) => {
                self.error(Diagnostic::new(e, sub.span_of("fps")).context(sub.at("fps")));
                return None;
            }
        };
        match avid::resolve(&codec, rate) {
            Ok(resolved) => Some(resolved),
            Err(e) => {
                let (key, hint) = match &e {
                    AvidError::Unknown { .. } => (
                        "codec",
                        "1080p DNxHD names: 36, 115, 175, 175x at 23.976/24; 36, 120, 185, 185x at 25; 45, 145, 220, 220x at 29.97; 75, 240, 365, 365x at 50; 90, 290, 440, 440x at 59.94".to_string(),
                    ),
                    AvidError::NotAtRate { .. } => (
                        "codec",
                        "an Avid DNxHD name is its bit rate at one frame rate: pick one listed, or change `fps`".to_string(),
                    ),
                    AvidError::NoNamesAtRate { .. } => (
                        "fps",
                        "DNxHR works at any rate, e.g. `codec: \"DNxHR HQX\"`".to_string(),
                    ),
                    AvidError::Rejected { .. } => ("codec", "choose another name".to_string()),
                };
                self.error(
                    Diagnostic::new(e.to_string(), sub.span_of(key))
                        .context(sub.at(key))
                        .hint(hint),
                );
                None
            }
        }
    }

    /// `verify: {frames: "{seq.count}", timecode: "{timecode}", codec: prores, decode: true}`.
    pub(super) fn verify(&mut self, map: &MapReader<'_>, known: &[String]) -> Option<VerifyRule> {
        let sub = self.submap(map, "verify", "{frames: \"{seq.count}\", codec: prores}")?;
        let _ = self.unknown_keys(&sub, VERIFY_KEYS);
        let NodeKind::Map(entries) = &sub.node.kind else {
            return None;
        };
        let mut checks = Vec::new();
        let decode = self.field::<bool>(&sub, "decode").unwrap_or(false);
        for (key, value) in entries {
            let Some(name) = key
                .as_scalar()
                .filter(|k| VERIFY_KEYS.contains(k) && *k != "decode")
            else {
                continue;
            };
            if let Some(t) = self.template(&sub, value, name, known) {
                if name == "fps" && t.variables().next().is_none() {
                    match Rate::parse(t.source()) {
                        Ok(rate) => self.known_rate(&sub, rate, t.source()),
                        Err(e) => self.warn(
                            Diagnostic::new(e, value.span)
                                .context(sub.at("fps"))
                                .hint("no product can match it, so every job would fail its check"),
                        ),
                    }
                }
                checks.push((name.to_string(), t));
            }
        }
        Some(VerifyRule { checks, decode })
    }

    /// Warns about an `fps:` that parses but is no rate in use, most likely a typo.
    fn known_rate(&mut self, map: &MapReader<'_>, rate: Rate, written: &str) {
        if !rate.is_known() {
            self.warn(
                Diagnostic::new(
                    format!("`{written}` fps is not a known frame rate"),
                    map.span_of("fps"),
                )
                .context(map.at("fps"))
                .hint(format!(
                    "known rates: {}; a fraction like 30000/1001 is exact",
                    Rate::known_text()
                )),
            );
        }
    }
}
