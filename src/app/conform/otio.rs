//! The `.otio` written beside a conformed movie: an OpenTimelineIO timeline of exactly what was
//! used, so editorial (or `otioconvert`) can open it and a later reader can tell which version
//! of which shot went into each cut. One video track in record order; each clip's media
//! reference is the product file with its available range (its start timecode, in frames),
//! its source range the frames taken from it, and its speed as a `LinearTimeWarp` or
//! `FreezeFrame`; black is a `Gap`. Clip metadata (`shotrouter`) names the shot, version, job
//! and the shot frames shown.

use serde_json::{Value, json};

use crate::app::conform::plan::{Segment, Source};
use crate::media::timecode::Rate;

/// What the timeline needs about one source beyond the plan's [`Source`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The shot.
    pub shot: String,
    /// The version in its file name.
    pub version: Option<u32>,
    /// The job that published it.
    pub job: i64,
    /// Its start timecode in frames (its media time of index 0); its first shot frame when it
    /// has no timecode.
    pub media_start: i64,
}

fn time(value: i64, rate: Rate) -> Value {
    json!({"OTIO_SCHEMA": "RationalTime.1", "rate": rate.fps(), "value": value as f64})
}

fn range(start: i64, duration: i64, rate: Rate) -> Value {
    json!({
        "OTIO_SCHEMA": "TimeRange.1",
        "start_time": time(start, rate),
        "duration": time(duration, rate),
    })
}

/// `file://` URL of an absolute path, with the characters a URL cannot hold escaped.
pub fn file_url(path: &str) -> String {
    let mut url = String::from("file://");
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// The timeline of `segments` (record start `record_start`), named `name`.
pub fn timeline(
    name: &str,
    rate: Rate,
    record_start: i64,
    segments: &[Segment],
    sources: &[Source],
    provenance: &[Provenance],
) -> Value {
    let children: Vec<Value> = segments
        .iter()
        .map(|segment| match segment {
            Segment::Black { frames, .. } => json!({
                "OTIO_SCHEMA": "Gap.1",
                "name": "",
                "source_range": range(0, *frames, rate),
                "effects": [],
                "markers": [],
                "enabled": true,
                "metadata": {},
            }),
            Segment::Clip {
                item,
                source,
                indexes,
            } => {
                let src = &sources[*source];
                let from = &provenance[*source];
                let start = from.media_start + (item.first - src.first);
                let effects = if item.speed == 0.0 {
                    vec![json!({"OTIO_SCHEMA": "FreezeFrame.1", "name": "", "effect_name": "FreezeFrame", "time_scalar": 0.0, "metadata": {}})]
                } else if item.speed != 1.0 {
                    vec![json!({"OTIO_SCHEMA": "LinearTimeWarp.1", "name": "", "effect_name": "LinearTimeWarp", "time_scalar": item.speed, "metadata": {}})]
                } else {
                    Vec::new()
                };
                let file = crate::app::conform::pick::file_name(&src.path);
                json!({
                    "OTIO_SCHEMA": "Clip.2",
                    "name": item.clip.clone().unwrap_or_else(|| item.shot.clone()),
                    "source_range": range(start, indexes.len() as i64, rate),
                    "media_references": {
                        "DEFAULT_MEDIA": {
                            "OTIO_SCHEMA": "ExternalReference.1",
                            "name": file,
                            "target_url": file_url(&src.path),
                            "available_range": range(from.media_start, src.frames, rate),
                            "available_image_bounds": null,
                            "metadata": {},
                        }
                    },
                    "active_media_reference_key": "DEFAULT_MEDIA",
                    "effects": effects,
                    "markers": [],
                    "enabled": true,
                    "metadata": {"shotrouter": {
                        "shot": from.shot,
                        "product": src.path,
                        "version": from.version,
                        "job": from.job,
                        "event": item.event,
                        "first": item.first,
                        "last": item.last,
                        "speed": item.speed,
                    }},
                })
            }
        })
        .collect();
    json!({
        "OTIO_SCHEMA": "Timeline.1",
        "name": name,
        "global_start_time": time(record_start, rate),
        "metadata": {},
        "tracks": {
            "OTIO_SCHEMA": "Stack.1",
            "name": "tracks",
            "source_range": null,
            "effects": [],
            "markers": [],
            "enabled": true,
            "metadata": {},
            "children": [{
                "OTIO_SCHEMA": "Track.1",
                "name": "V1",
                "kind": "Video",
                "source_range": null,
                "effects": [],
                "markers": [],
                "enabled": true,
                "metadata": {},
                "children": children,
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::conform::plan::Use;
    use crate::edit::ShotNaming;

    fn fixture() -> Value {
        let item = Use {
            shot: "sh010".into(),
            event: 1,
            clip: Some("sh010_anim".into()),
            record_in: 86400,
            record_out: 86404,
            first: 1009,
            last: 1016,
            speed: 2.0,
        };
        let source = Source {
            path: "/r/sh 010_v002.mov".into(),
            first: 1001,
            frames: 76,
            width: 64,
            height: 36,
        };
        let from = Provenance {
            shot: "sh010".into(),
            version: Some(2),
            job: 7,
            media_start: 1001,
        };
        let segments = [
            Segment::Clip {
                item,
                source: 0,
                indexes: vec![8, 10, 12, 14],
            },
            Segment::Black {
                record_in: 86404,
                frames: 2,
            },
        ];
        timeline(
            "seq01",
            Rate { num: 24, den: 1 },
            86400,
            &segments,
            &[source],
            &[from],
        )
    }

    #[test]
    fn each_clip_names_its_product_version_and_source_range() {
        let t = fixture();
        let clip = &t["tracks"]["children"][0]["children"][0];
        assert_eq!(clip["OTIO_SCHEMA"], "Clip.2");
        assert_eq!(clip["source_range"]["start_time"]["value"], 1009.0);
        assert_eq!(clip["source_range"]["duration"]["value"], 4.0);
        let reference = &clip["media_references"]["DEFAULT_MEDIA"];
        assert_eq!(reference["target_url"], "file:///r/sh%20010_v002.mov");
        assert_eq!(reference["available_range"]["duration"]["value"], 76.0);
        assert_eq!(clip["effects"][0]["time_scalar"], 2.0);
        assert_eq!(clip["metadata"]["shotrouter"]["version"], 2);
        assert_eq!(t["global_start_time"]["value"], 86400.0);
        assert_eq!(
            t["tracks"]["children"][0]["children"][1]["OTIO_SCHEMA"],
            "Gap.1"
        );
    }

    #[test]
    fn shotrouters_own_reader_reads_it_back_as_the_cut_played() {
        let text = serde_json::to_string(&fixture()).unwrap();
        let cut = crate::edit::otio::parse(&text, Rate { num: 24, den: 1 }).unwrap();
        let video: Vec<_> = cut.video_items().map(|(_, i)| i).collect();
        assert_eq!(video.len(), 1);
        assert_eq!((video[0].record_in, video[0].record_out), (86400, 86404));
        assert_eq!(video[0].source_in, 1009);
        assert_eq!(video[0].speed, 2.0);
        let naming = ShotNaming::new("^(?P<shot>sh[0-9]{3})_").unwrap();
        assert_eq!(naming.shot_of(video[0]).as_deref(), Some("sh010"));
    }
}
