//! One OpenLineage `RunEvent` (spec 2-0-2) as the JSON a receiver takes: the job (namespace
//! `shotrouter://<show>`, named after the rule), the run (its id, and an `errorMessage` facet
//! when it failed), the files it read and made as datasets named by their absolute path, each
//! with the version the file system gave it then in a `shotrouter_version` facet. Built from
//! plain values; the file system is read by the caller ([`Dataset::of`]).

use std::path::Path;

use serde::Serialize;

use crate::os::version::FileVersion;

/// The spec's definition of a run event, named in every event's `schemaURL`.
pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

/// Who made the event (and every facet of it): this version of shotrouter.
pub const PRODUCER: &str = concat!(
    "https://github.com/shotrouter/shotrouter/tree/",
    env!("CARGO_PKG_VERSION")
);

/// The spec's `errorMessage` run facet.
const ERROR_FACET_URL: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";

/// The custom dataset facet carrying a file's version; its schema is
/// `docs/openlineage-version-facet.json`.
pub const VERSION_FACET: &str = "shotrouter_version";

const VERSION_FACET_URL: &str = concat!(
    "https://github.com/shotrouter/shotrouter/blob/",
    env!("CARGO_PKG_VERSION"),
    "/docs/openlineage-version-facet.json#/$defs/ShotrouterVersionDatasetFacet"
);

/// A run's transition, as the spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// The attempt's first step started.
    Start,
    /// Every step succeeded and the product, if any, was published.
    Complete,
    /// A step failed, timed out or could not start, or the product failed its checks.
    Fail,
    /// The attempt was cancelled, or cut short by the node's stop.
    Abort,
}

/// One event, ready to serialize.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    /// START, COMPLETE, FAIL or ABORT.
    pub event_type: EventType,
    /// When it happened, RFC 3339.
    pub event_time: String,
    /// The run: one attempt of one job.
    pub run: Run,
    /// The job: the rule.
    pub job: Job,
    /// The files the attempt read.
    pub inputs: Vec<Dataset>,
    /// The files it made (on COMPLETE).
    pub outputs: Vec<Dataset>,
    /// [`PRODUCER`].
    pub producer: &'static str,
    /// [`SCHEMA_URL`].
    #[serde(rename = "schemaURL")]
    pub schema_url: &'static str,
}

/// The run of an event.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// A UUID, the same in the START and the end of one attempt.
    #[serde(rename = "runId")]
    pub run_id: String,
    /// Its facets (only `errorMessage`, on a failure).
    #[serde(skip_serializing_if = "RunFacets::is_empty")]
    pub facets: RunFacets,
}

/// A run's facets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunFacets {
    /// Why the attempt failed or was stopped.
    #[serde(rename = "errorMessage", skip_serializing_if = "Option::is_none")]
    pub error_message: Option<ErrorMessage>,
}

impl RunFacets {
    fn is_empty(&self) -> bool {
        self.error_message.is_none()
    }
}

/// What every facet carries: who made it and the schema it follows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FacetBase {
    /// [`PRODUCER`].
    #[serde(rename = "_producer")]
    pub producer: &'static str,
    /// The facet's schema.
    #[serde(rename = "_schemaURL")]
    pub schema_url: &'static str,
}

/// The spec's `errorMessage` run facet.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessage {
    #[serde(flatten)]
    base: FacetBase,
    /// The reason, as the job's log and `shotrouter job` give it.
    pub message: String,
    /// The language of what made the message: shotrouter itself, whatever the job's steps run.
    pub programming_language: &'static str,
}

impl ErrorMessage {
    /// A facet saying `message`.
    pub fn new(message: String) -> ErrorMessage {
        ErrorMessage {
            base: FacetBase {
                producer: PRODUCER,
                schema_url: ERROR_FACET_URL,
            },
            message,
            programming_language: "Rust",
        }
    }
}

/// The job of an event.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// `shotrouter://<show>`.
    pub namespace: String,
    /// The rule's name.
    pub name: String,
}

/// A file as a dataset.
#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    /// `file://<host>`: the machine whose path `name` is.
    pub namespace: String,
    /// The absolute path, escaped as plans write paths (`%` and bytes that are not UTF-8 as
    /// `%XX`), so any name survives JSON.
    pub name: String,
    /// Its facets: the version, when the file was there.
    pub facets: DatasetFacets,
}

/// A dataset's facets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatasetFacets {
    /// The file's version when the event was made.
    #[serde(rename = "shotrouter_version", skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionFacet>,
}

/// The custom `shotrouter_version` facet: what tells two versions of one path apart, the same
/// triple the store records of every input and product.
#[derive(Debug, Clone, Serialize)]
pub struct VersionFacet {
    #[serde(flatten)]
    base: FacetBase,
    /// Inode number.
    pub inode: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

impl Dataset {
    /// `path` on the host of `namespace`, with the version `version` (`None` when the file was
    /// missing: a product that was never made).
    pub fn new(namespace: &str, path: &Path, version: Option<FileVersion>) -> Dataset {
        Dataset {
            namespace: namespace.to_string(),
            name: crate::os::path_text::escape(path),
            facets: DatasetFacets {
                version: version.map(|v| VersionFacet {
                    base: FacetBase {
                        producer: PRODUCER,
                        schema_url: VERSION_FACET_URL,
                    },
                    inode: v.ino,
                    size: v.size,
                    mtime_ns: i64::try_from(v.mtime_ns).unwrap_or(i64::MAX),
                }),
            },
        }
    }

    /// `path` as it is now on this host (`namespace`).
    pub fn of(namespace: &str, path: &Path) -> Dataset {
        Dataset::new(namespace, path, FileVersion::of(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    fn event(event_type: EventType, error: Option<&str>) -> serde_json::Value {
        let version = FileVersion {
            dev: 1,
            ino: 42,
            size: 7,
            mtime_ns: 1_700_000_000_123_456_789,
        };
        let event = RunEvent {
            event_type,
            event_time: "2026-12-06T03:51:26.5Z".into(),
            run: Run {
                run_id: "0193a3f0-7b1c-7000-8000-000000000001".into(),
                facets: RunFacets {
                    error_message: error.map(|e| ErrorMessage::new(e.into())),
                },
            },
            job: Job {
                namespace: "shotrouter://bigshow".into(),
                name: "review".into(),
            },
            inputs: vec![
                Dataset::new("file://n1", Path::new("/s/a.exr"), Some(version)),
                Dataset::new("file://n1", Path::new("/luts/show.cube"), None),
            ],
            outputs: Vec::new(),
            producer: PRODUCER,
            schema_url: SCHEMA_URL,
        };
        serde_json::to_value(&event).expect("json")
    }

    #[test]
    fn a_start_names_the_job_the_run_and_the_versions_of_its_inputs() {
        let json = event(EventType::Start, None);
        assert_eq!(json["eventType"], "START");
        assert_eq!(json["eventTime"], "2026-12-06T03:51:26.5Z");
        assert_eq!(json["schemaURL"], SCHEMA_URL);
        assert_eq!(json["producer"], PRODUCER);
        assert!(PRODUCER.ends_with(env!("CARGO_PKG_VERSION")));
        assert_eq!(json["job"]["namespace"], "shotrouter://bigshow");
        assert_eq!(json["job"]["name"], "review");
        assert_eq!(json["run"]["runId"], "0193a3f0-7b1c-7000-8000-000000000001");
        assert!(json["run"].get("facets").is_none(), "no empty facets");
        let input = &json["inputs"][0];
        assert_eq!(
            (input["namespace"].as_str(), input["name"].as_str()),
            (Some("file://n1"), Some("/s/a.exr"))
        );
        let facet = &input["facets"][VERSION_FACET];
        assert_eq!(
            (facet["inode"].as_u64(), facet["size"].as_u64()),
            (Some(42), Some(7))
        );
        assert_eq!(facet["mtime_ns"].as_i64(), Some(1_700_000_000_123_456_789));
        assert_eq!(facet["_producer"], PRODUCER);
        assert!(
            facet["_schemaURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://") && u.contains("#/$defs/"))
        );
        assert!(
            json["inputs"][1]["facets"].get(VERSION_FACET).is_none(),
            "a missing file has no version"
        );
        assert_eq!(json["outputs"], serde_json::json!([]));
    }

    #[test]
    fn a_failure_carries_its_reason_in_the_spec_error_facet() {
        let json = event(EventType::Fail, Some("step 1 exited with status 1"));
        assert_eq!(json["eventType"], "FAIL");
        let facet = &json["run"]["facets"]["errorMessage"];
        assert_eq!(facet["message"], "step 1 exited with status 1");
        assert_eq!(facet["programmingLanguage"], "Rust");
        assert_eq!(facet["_schemaURL"], ERROR_FACET_URL);
        assert_eq!(facet["_producer"], PRODUCER);
    }

    #[test]
    fn the_event_types_are_the_spec_words() {
        for (kind, word) in [
            (EventType::Start, "START"),
            (EventType::Complete, "COMPLETE"),
            (EventType::Fail, "FAIL"),
            (EventType::Abort, "ABORT"),
        ] {
            assert_eq!(serde_json::to_value(kind).expect("json"), word);
        }
    }

    #[test]
    fn any_file_name_survives_as_the_dataset_name() {
        let hostile = Path::new(OsStr::from_bytes(b"/s/a b'\"$(x)\n%\xff.exr"));
        let dataset = Dataset::new("file://n1", hostile, None);
        assert_eq!(dataset.name, "/s/a b'\"$(x)\n%25%FF.exr");
        assert_eq!(crate::os::path_text::unescape(&dataset.name), hostile);
        let json = serde_json::to_string(&dataset).expect("json");
        let back: serde_json::Value = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back["name"], dataset.name);
    }

    #[test]
    fn a_real_file_is_named_with_its_version() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("plate.0001.exr");
        std::fs::write(&path, b"12345").expect("write");
        let dataset = Dataset::of("file://n1", &path);
        let facet = dataset.facets.version.expect("a version");
        assert_eq!(facet.size, 5);
        assert_eq!(
            facet.inode,
            FileVersion::of(&path).expect("there").ino,
            "the file's own inode"
        );
    }
}
