//! The Avid Log Exchange (ALE) written beside a product, the way KeyKode reaches the Avid (MXF
//! drops it): a tab-separated heading, column list and one data row per delivered clip.
//!
//! Route computes the sheet (timecode and KeyKode are `media`'s); here it is rendered and
//! published like the product: written to a hidden temp name in the product's checked folder
//! before the product is published ([`WriteAle`]), renamed into place right after it
//! ([`PublishAle`]). `End` and `KN End` are exclusive (the frame after the last), as Avid and
//! OpenTimelineIO's ALE adapter read them (`Duration = End − Start`).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::deliver::{DeliverError, Product, Step, StepContext};

/// One row of the `Data` section: a clip as the Avid logs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AleClip {
    /// `Name`: the clip's name in the bin.
    pub name: String,
    /// `Tape`: the source name Avid relinks by.
    pub tape: String,
    /// `Source File`: the product's file name.
    pub source_file: String,
    /// `Start`: the first frame's timecode.
    pub start: String,
    /// `End`: the timecode of the frame after the last.
    pub end: String,
    /// `KN Start`, `KN End` (exclusive) and `KN Duration` (feet+frames), when KeyKode is set.
    pub keykode: Option<[String; 3]>,
}

/// An ALE file: where it goes and what it says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AleSheet {
    /// The published path, in the product's folder.
    #[serde(with = "crate::os::path_text::path")]
    pub final_path: PathBuf,
    /// `FPS` as Avid writes it (`23.976`, `24`, `29.97`).
    pub fps: String,
    /// `VIDEO_FORMAT` (`1080`, `720`, `CUSTOM`...).
    pub video_format: String,
    /// The clips, one row each.
    pub clips: Vec<AleClip>,
}

/// The columns written, in order; the KeyKode ones only when some clip has KeyKode.
const COLUMNS: &[&str] = &["Name", "Tracks", "Start", "End", "Tape", "Source File"];
const KN_COLUMNS: &[&str] = &["KN Start", "KN End", "KN Duration"];

impl AleSheet {
    /// The file's text. Tabs and line breaks inside a value would shift every later column,
    /// so they become spaces.
    pub fn render(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let with_kn = self.clips.iter().any(|c| c.keykode.is_some());
        let mut columns: Vec<&str> = COLUMNS.to_vec();
        if with_kn {
            columns.extend_from_slice(KN_COLUMNS);
        }
        let mut out = format!(
            "Heading\nFIELD_DELIM\tTABS\nVIDEO_FORMAT\t{}\nAUDIO_FORMAT\t48khz\nFPS\t{}\n\nColumn\n{}\n\nData\n",
            clean(&self.video_format),
            clean(&self.fps),
            columns.join("\t")
        );
        for clip in &self.clips {
            let mut row = vec![
                clean(&clip.name),
                "V".to_string(),
                clean(&clip.start),
                clean(&clip.end),
                clean(&clip.tape),
                clean(&clip.source_file),
            ];
            if with_kn {
                match &clip.keykode {
                    Some(kn) => row.extend(kn.iter().map(|k| clean(k))),
                    None => row.extend([String::new(), String::new(), String::new()]),
                }
            }
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
        out
    }
}

/// The hidden name the ALE is written under before it is published: the product's temp name
/// with `.ale`, so a killed attempt's leftovers are found (and ignored) like the product's.
fn temp_name(product: &Product) -> OsString {
    ale_temp_name(product.temp_name())
}

fn ale_temp_name(product_temp: &std::ffi::OsStr) -> OsString {
    let mut name = product_temp.as_bytes().to_vec();
    name.extend_from_slice(b".ale");
    OsString::from_vec(name)
}

/// Where an attempt whose product temp file is `product_temp` writes its ALE before publishing:
/// what a sweep after a crash removes besides the product's temp file.
pub fn temp_beside(product_temp: &std::path::Path) -> Option<PathBuf> {
    Some(product_temp.with_file_name(ale_temp_name(product_temp.file_name()?)))
}

/// Writes the ALE under its temp name, before the product is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteAle {
    /// What to write.
    pub sheet: AleSheet,
}

impl Step for WriteAle {
    fn name(&self) -> &'static str {
        "ale"
    }

    fn run(&self, product: &mut Product, cx: &mut StepContext<'_>) -> Result<(), DeliverError> {
        let fail = |cx: &mut StepContext<'_>, reason: String| {
            cx.note(format!("== ale: {reason}"));
            Err(DeliverError::Ale(reason))
        };
        let Some(dir) = product.dir.clone() else {
            return fail(cx, "the product's folder was not opened".into());
        };
        let name = temp_name(product);
        let via = dir.via(&name);
        product.extra_files.push(dir.checked_path().join(&name));
        let written = std::fs::File::create(&via).and_then(|mut file| {
            std::io::Write::write_all(&mut file, self.sheet.render().as_bytes())?;
            file.sync_all()
        });
        if let Err(e) = written {
            return fail(
                cx,
                format!("cannot write `{}`: {e}", self.sheet.final_path.display()),
            );
        }
        Ok(())
    }
}

/// Renames the ALE into place once the product is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAle {
    /// Where it goes.
    pub final_path: PathBuf,
}

impl Step for PublishAle {
    fn name(&self) -> &'static str {
        "ale"
    }

    fn run(&self, product: &mut Product, cx: &mut StepContext<'_>) -> Result<(), DeliverError> {
        let Some(dir) = product.dir.clone() else {
            return Err(DeliverError::Ale(
                "the product's folder was not opened".into(),
            ));
        };
        let final_name = self.final_path.file_name().unwrap_or_default();
        if let Err(e) = dir.rename(&temp_name(product), final_name) {
            let reason = format!("cannot publish `{}`: {e}", self.final_path.display());
            cx.note(format!("== ale: {reason}"));
            return Err(DeliverError::Ale(reason));
        }
        let _ = dir.sync();
        cx.note(format!("== published {}", self.final_path.display()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_heading_columns_and_one_row_per_clip() {
        let sheet = AleSheet {
            final_path: "/s/sh010.ale".into(),
            fps: "29.97".into(),
            video_format: "1080".into(),
            clips: vec![AleClip {
                name: "sh010\tcomp".into(),
                tape: "sh010".into(),
                source_file: "sh010.mxf".into(),
                start: "00:59:59;28".into(),
                end: "01:00:00;04".into(),
                keykode: Some([
                    "KU 22 9012 1234+05".into(),
                    "KU 22 9012 1234+11".into(),
                    "0+06".into(),
                ]),
            }],
        };
        assert_eq!(
            sheet.render(),
            "Heading\nFIELD_DELIM\tTABS\nVIDEO_FORMAT\t1080\nAUDIO_FORMAT\t48khz\nFPS\t29.97\n\n\
             Column\nName\tTracks\tStart\tEnd\tTape\tSource File\tKN Start\tKN End\tKN Duration\n\n\
             Data\nsh010 comp\tV\t00:59:59;28\t01:00:00;04\tsh010\tsh010.mxf\tKU 22 9012 1234+05\tKU 22 9012 1234+11\t0+06\n"
        );
        let plain = AleSheet {
            clips: vec![AleClip {
                keykode: None,
                ..sheet.clips[0].clone()
            }],
            ..sheet
        };
        assert!(!plain.render().contains("KN Start"));
    }
}
