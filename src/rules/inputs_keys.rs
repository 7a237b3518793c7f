//! Reading a rule's `inputs:`, `wait_inputs:` and `on_input_change:` (see
//! [`DeclaredInputs`]), and the file's `lineage:` block.

use crate::rules::diag::Diagnostic;
use crate::rules::inputs::{DEFAULT_WAIT_INPUTS, DeclaredInputs, LineageSettings, OnInputChange};
use crate::rules::loader::{Loader, MapReader};
use crate::rules::yaml::NodeKind;

const LINEAGE_KEYS: &[&str] = &["record", "openlineage"];

impl Loader<'_> {
    /// `inputs:` (a list of path templates, checked against the variables the job has),
    /// with `wait_inputs:` and `on_input_change:`, which mean nothing without it.
    pub(super) fn declared_inputs(
        &mut self,
        map: &MapReader<'_>,
        known: &[String],
    ) -> Option<DeclaredInputs> {
        let wait = self.duration(map, "wait_inputs");
        let on_change = self.field::<OnInputChange>(map, "on_input_change");
        let Some(node) = map.node.get("inputs") else {
            for key in ["wait_inputs", "on_input_change"] {
                if map.node.get(key).is_some() {
                    self.error(
                        Diagnostic::new(
                            format!("`{key}` needs `inputs:`, the files the job waits for"),
                            map.span_of(key),
                        )
                        .context(map.at(key))
                        .hint("e.g. `inputs: [\"{root}/{shot}/grade/{shot}.cube\"]`"),
                    );
                }
            }
            return None;
        };
        let NodeKind::Seq(items) = &node.kind else {
            self.error(
                Diagnostic::new("`inputs` takes a list of paths", node.span)
                    .context(map.at("inputs"))
                    .hint("e.g. `inputs: [\"{root}/{shot}/grade/{shot}.cube\"]`"),
            );
            return None;
        };
        if wait == Some(std::time::Duration::ZERO) {
            self.error(
                Diagnostic::new(
                    "`wait_inputs` must be longer than 0s",
                    map.span_of("wait_inputs"),
                )
                .context(map.at("wait_inputs"))
                .hint("leave it out to wait a day, or give e.g. `wait_inputs: 2h`"),
            );
        }
        let paths: Vec<_> = items
            .iter()
            .filter_map(|item| self.template(map, item, "inputs", known))
            .collect();
        (paths.len() == items.len()).then_some(DeclaredInputs {
            paths,
            wait: wait.unwrap_or(DEFAULT_WAIT_INPUTS),
            on_change: on_change.unwrap_or_default(),
        })
    }

    /// The file's `lineage:` block: `record:` and `openlineage:` (an http or https URL).
    pub(super) fn lineage_block(&mut self, top: &MapReader<'_>) -> LineageSettings {
        let Some(map) = self.submap(
            top,
            "lineage",
            "{openlineage: \"http://marquez:5000/api/v1/lineage\"}",
        ) else {
            return LineageSettings::default();
        };
        let _ = self.unknown_keys(&map, LINEAGE_KEYS);
        let record = self.field::<bool>(&map, "record").unwrap_or(true);
        let openlineage = self.field::<String>(&map, "openlineage");
        if let Some(url) = &openlineage
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            self.error(
                Diagnostic::new(
                    format!("`openlineage` must be an http:// or https:// URL, not `{url}`"),
                    map.span_of("openlineage"),
                )
                .context(map.at("openlineage"))
                .hint("the endpoint of an OpenLineage receiver, e.g. `http://marquez:5000/api/v1/lineage`"),
            );
        }
        LineageSettings {
            record,
            openlineage,
        }
    }
}
