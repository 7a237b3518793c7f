//! `copy:` and `move:` on a rule: a verified delivery of a file to `to:` (a template), with the
//! hashes to compute and whether the destination's ASC MHL history records it.
//!
//! A rule with commands (`run:`/`steps:`) delivers its published product; a rule without them
//! delivers the matched file itself. Everything that can be checked here is: hash names (with a
//! suggestion), `to:`'s variables, one of `copy`/`move` only, and the combinations that have no
//! file to deliver. The copying itself is `deliver::copy`'s.

use crate::deliver::copy::TransferKind;
use crate::deliver::hash::HashKind;
use crate::rules::diag::Diagnostic;
use crate::rules::loader::{Loader, MapReader};
use crate::rules::model::TransferRule;
use crate::rules::syntax::did_you_mean;
use crate::rules::yaml::{Node, NodeKind};

/// The keys of `copy:` and `move:`.
pub const KEYS: &[&str] = &["to", "hash", "mhl"];

/// How a rule's other keys frame its `copy:`/`move:`, for the checks that combine them.
pub(super) struct Framing {
    /// The rule runs commands (`run:`/`steps:`).
    pub(super) has_commands: bool,
    /// The rule declares `output:`.
    pub(super) has_output: bool,
    /// The rule has `sequence:`.
    pub(super) is_sequence: bool,
    /// The rule fires only on deletes.
    pub(super) only_deletes: bool,
}

impl Loader<'_> {
    /// `copy: {to, hash, mhl}` or `move: {...}`; `None` when the rule has neither or either is bad.
    pub(super) fn transfer(
        &mut self,
        map: &MapReader<'_>,
        known: &[String],
        framing: &Framing,
    ) -> Option<TransferRule> {
        let (key, kind) = match (map.node.get("copy"), map.node.get("move")) {
            (None, None) => return None,
            (Some(_), Some(_)) => {
                self.error(
                    Diagnostic::new("give either `copy` or `move`, not both", map.span_of("move"))
                        .context(map.at("move"))
                        .hint("`move` is a `copy` that removes its source once the destination is verified"),
                );
                return None;
            }
            (Some(_), None) => ("copy", TransferKind::Copy),
            (None, Some(_)) => ("move", TransferKind::Move),
        };
        let example = "{to: \"/mnt/san/{rel}\", hash: xxh64, mhl: true}";
        let sub = self.submap(map, key, example)?;
        let errors_before = self.errors.len();
        let _ = self.unknown_keys(&sub, KEYS);
        let to = match sub.node.get("to") {
            Some(node) => self.template(&sub, node, "to", known),
            None => {
                self.error(
                    Diagnostic::new(
                        format!("`{key}` needs `to:`, the destination file"),
                        sub.node.span,
                    )
                    .context(sub.at(""))
                    .hint(format!("e.g. `{key}: {example}`")),
                );
                None
            }
        };
        if let Some(to) = &to
            && (to.source().ends_with('/') || to.source().is_empty())
        {
            self.error(
                Diagnostic::new(
                    format!("`{key}.to` names a folder, not a file"),
                    sub.span_of("to"),
                )
                .context(sub.at("to"))
                .hint("end it with the file's name, e.g. `.../{name}`"),
            );
        }
        let hashes = match sub.node.get("hash") {
            Some(node) => self.hash_names(&sub, node),
            None => vec![HashKind::Xxh64],
        };
        let mhl = self.field::<bool>(&sub, "mhl").unwrap_or(false);
        self.transfer_framing(map, key, framing);
        if self.errors.len() > errors_before {
            return None;
        }
        Some(TransferRule {
            kind,
            to: to?,
            hashes,
            mhl,
        })
    }

    /// `hash: xxh64` or `hash: [xxh64, md5]`, each name known and given once.
    fn hash_names(&mut self, sub: &MapReader<'_>, node: &Node) -> Vec<HashKind> {
        let known: Vec<&str> = HashKind::ALL.iter().map(|k| k.as_str()).collect();
        if matches!(&node.kind, NodeKind::Seq(items) if items.is_empty()) {
            self.error(
                Diagnostic::new("`hash` lists no hash", node.span)
                    .context(sub.at("hash"))
                    .hint(format!("name at least one of {}", known.join(", "))),
            );
        }
        let mut hashes = Vec::new();
        for item in node.items() {
            let Some(name) = item.as_scalar() else {
                self.error(
                    Diagnostic::new("`hash` takes a name or a list of names", item.span)
                        .context(sub.at("hash")),
                );
                continue;
            };
            match HashKind::parse(name) {
                Some(kind) if hashes.contains(&kind) => self.error(
                    Diagnostic::new(format!("hash `{name}` is listed twice"), item.span)
                        .context(sub.at("hash")),
                ),
                Some(kind) => hashes.push(kind),
                None => {
                    let hint = match did_you_mean(name, known.iter().copied()) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => format!("known hashes: {}", known.join(", ")),
                    };
                    self.error(
                        Diagnostic::new(format!("unknown hash `{name}`"), item.span)
                            .context(sub.at("hash"))
                            .hint(hint),
                    );
                }
            }
        }
        hashes
    }

    /// The combinations of keys that leave a `copy`/`move` nothing to deliver.
    fn transfer_framing(&mut self, map: &MapReader<'_>, key: &str, framing: &Framing) {
        let span = map.span_of(key);
        if framing.has_commands && !framing.has_output {
            self.error(
                Diagnostic::new(
                    format!("`{key}` beside `run`/`steps` delivers the rule's product, but the rule declares no `output`"),
                    span,
                )
                .context(map.at(key))
                .hint("declare `output:` (the commands write \"{out}\"), or leave out `run`/`steps` to deliver the matched file itself"),
            );
        }
        if !framing.has_commands && framing.has_output {
            self.error(
                Diagnostic::new(
                    format!("`output` names a product of commands, but the rule runs none: `{key}` delivers the matched file to `{key}.to`"),
                    map.span_of("output"),
                )
                .context(map.at("output"))
                .hint("leave out `output:`, or add the `run:` that writes \"{out}\""),
            );
        }
        if !framing.has_commands && framing.is_sequence {
            self.error(
                Diagnostic::new(
                    format!("`{key}` as a sequence rule's action has no single file to deliver"),
                    span,
                )
                .context(map.at(key))
                .hint("deliver each frame with a rule without `sequence:`, or add the `run:` that makes the sequence's product"),
            );
        }
        if framing.only_deletes {
            self.error(
                Diagnostic::new(
                    format!("`{key}` on a rule that fires only on `delete`: a deleted file cannot be delivered"),
                    span,
                )
                .context(map.at(key)),
            );
        }
    }
}
