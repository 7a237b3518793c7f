//! Reading the `conform:` block (see [`ConformSettings`]): the rule it takes products from
//! (which must exist), the movie's template, `pick`, `codec`, `cut` and `settle`, each refused
//! at its value when bad.

use std::collections::BTreeMap;
use std::path::Path;

use crate::rules::Rule;
use crate::rules::conform::{
    CONFORM_RULE, CONFORM_VARIABLES, ConformCodec, ConformSettings, DEFAULT_CONFORM_SETTLE,
};
use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::syntax::{did_you_mean, parse_duration};
use crate::rules::template::Template;
use crate::rules::yaml::Node;

const CONFORM_KEYS: &[&str] = &["from", "output", "pick", "codec", "cut", "settle"];

impl Loader<'_> {
    /// The file's `conform:` block; `None` when absent or reported. `rules` are the file's
    /// rules (`from` names one); `has_cuts`: the file has a `cuts:` block.
    pub(super) fn conform_block(
        &mut self,
        top: &MapReader<'_>,
        base: &Path,
        rules: &[Rule],
        vars: &BTreeMap<String, String>,
        has_cuts: bool,
    ) -> Option<ConformSettings> {
        let map = self.submap(
            top,
            "conform",
            "{from: review, output: \"review/{cut.name}_r{cut.revision}.mov\"}",
        )?;
        let _ = self.unknown_keys(&map, CONFORM_KEYS);
        let errors = self.errors.len();
        if !has_cuts {
            self.error(
                Diagnostic::new("`conform:` needs a `cuts:` block", top.span_of("conform"))
                    .context(map.at(""))
                    .hint("the cut names the shots: add e.g. `cuts: {shot: \"^(?P<shot>sh[0-9]{3})_\"}`"),
            );
        }
        let from = self.conform_from(&map, rules);
        let output = match map.node.get("output") {
            Some(node) => {
                let known: Vec<String> = CONFORM_VARIABLES
                    .iter()
                    .map(|v| v.to_string())
                    .chain(vars.keys().cloned())
                    .collect();
                if self.conform_cut_variables(&map, node) {
                    self.template(&map, node, "output", &known)
                } else {
                    None
                }
            }
            None => {
                self.error(
                    Diagnostic::new("`conform:` needs `output:`, the movie to write", map.node.span)
                        .context(map.at(""))
                        .hint("e.g. `output: \"review/{cut.name}_r{cut.revision}.mov\"` (relative to the rules file's folder)"),
                );
                None
            }
        };
        if let Some(text) = self.field::<String>(&map, "pick")
            && text != "latest"
        {
            let message = if text == "approved" {
                "`pick: approved` is not supported yet: the store keeps no approvals".to_string()
            } else {
                format!("unknown `pick` `{text}`")
            };
            self.error(
                Diagnostic::new(message, map.span_of("pick"))
                    .context(map.at("pick"))
                    .hint("use `pick: latest` (the highest version in the file name, else the latest published)"),
            );
        }
        let codec = match self.field::<String>(&map, "codec").as_deref() {
            None | Some("prores") => ConformCodec::Prores,
            Some("ffv1") => ConformCodec::Ffv1,
            Some(other) => {
                self.error(
                    Diagnostic::new(format!("unknown codec `{other}`"), map.span_of("codec"))
                        .context(map.at("codec"))
                        .hint("use `prores` (ProRes 422 HQ, the default) or `ffv1` (lossless)"),
                );
                ConformCodec::Prores
            }
        };
        let cut = self.field::<String>(&map, "cut");
        if let (None, Some(template)) = (&cut, &output)
            && !template.variables().any(|(v, _)| v == "cut.name")
        {
            self.error(
                Diagnostic::new(
                    "every cut would be conformed into one movie",
                    map.span_of("output"),
                )
                .context(map.at("output"))
                .hint("name the cut in the movie (`{cut.name}`), or conform one cut with `cut:`"),
            );
        }
        let settle = match self.field::<String>(&map, "settle") {
            Some(text) => match parse_duration(&text) {
                Ok(d) => d,
                Err(e) => {
                    self.error(
                        Diagnostic::new(format!("`settle`: {e}"), map.span_of("settle"))
                            .context(map.at("settle"))
                            .hint("e.g. `settle: 30s`"),
                    );
                    DEFAULT_CONFORM_SETTLE
                }
            },
            None => DEFAULT_CONFORM_SETTLE,
        };
        if let Some(rule) = rules.iter().find(|r| r.name == CONFORM_RULE) {
            self.error(
                Diagnostic::new(
                    format!("rule `{CONFORM_RULE}` has the name conform jobs take"),
                    top.span_of("conform"),
                )
                .context(map.at(""))
                .hint(format!(
                    "rename rule `{}`: `shotrouter jobs --rule {CONFORM_RULE}` lists the conforms",
                    rule.name
                )),
            );
        }
        if self.errors.len() > errors {
            return None;
        }
        Some(ConformSettings {
            from: from?,
            output: output?,
            base: base.to_path_buf(),
            vars: vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            codec,
            cut,
            settle,
        })
    }

    /// Refuses a `{cut.*}` variable of `output:` other than those a conform knows (a rule's
    /// hint, about its `shot` capture, would mislead here); true when there is none.
    fn conform_cut_variables(&mut self, map: &MapReader<'_>, node: &Node) -> bool {
        let Some(template) = node.as_scalar().and_then(|t| Template::parse(t).ok()) else {
            return true;
        };
        let mut ok = true;
        for (var, offset) in template.variables() {
            if !var.starts_with("cut.") || CONFORM_VARIABLES.contains(&var) {
                continue;
            }
            ok = false;
            let hint = match did_you_mean(var, CONFORM_VARIABLES.iter().copied()) {
                Some(best) => format!("did you mean `{{{best}}}`?"),
                None => "a conform's movie knows `{cut.name}` and `{cut.revision}`".to_string(),
            };
            self.error(
                Diagnostic::new(
                    format!("unknown template variable `{{{var}}}`"),
                    self.span_within(node, offset),
                )
                .context(map.at("output"))
                .hint(hint),
            );
        }
        ok
    }

    /// `from:`, required: the name of one of the file's rules.
    fn conform_from(&mut self, map: &MapReader<'_>, rules: &[Rule]) -> Option<String> {
        if map.node.get("from").is_none() {
            self.error(
                Diagnostic::new(
                    "`conform:` needs `from:`, the rule whose products are the shots",
                    map.node.span,
                )
                .context(map.at(""))
                .hint("e.g. `from: review` (a rule that makes one movie per shot)"),
            );
            return None;
        }
        let name = self.field::<String>(map, "from")?;
        if rules.iter().any(|r| r.name == name) {
            return Some(name);
        }
        let mut d = Diagnostic::new(format!("no rule named `{name}`"), map.span_of("from"))
            .context(map.at("from"));
        d = match did_you_mean(&name, rules.iter().map(|r| r.name.as_str())) {
            Some(best) => d.hint(format!("did you mean `{best}`?")),
            None => d.hint(format!(
                "the rules are: {}",
                rules
                    .iter()
                    .map(|r| format!("`{}`", r.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        self.error(d);
        None
    }
}
