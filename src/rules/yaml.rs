//! A YAML document as a tree of nodes that remember where they stand in the source; `de` is a
//! serde `Deserializer` over that tree (two concepts, two files: building the tree from
//! yaml-rust2's events, and reading typed values out of it).
//!
//! Why not serde_yaml: it stops at the first error and forgets positions once a value is parsed,
//! but `check` must list every error of a rules file, each at its value. Keeping a position on
//! every node lets any error found later (a bad regex, an unknown template variable) point at
//! the exact scalar, and lets each rule be deserialized on its own so one bad rule hides no other.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

mod de;

pub use de::{DeError, from_node};

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Line number, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Span {
    fn from_marker(mark: Marker) -> Span {
        Span {
            line: mark.line(),
            column: mark.col() + 1,
        }
    }
}

/// One YAML value with the position of its first character.
#[derive(Debug, Clone)]
pub struct Node {
    /// What the value is.
    pub kind: NodeKind,
    /// Where it starts.
    pub span: Span,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A scalar; `plain` is false when it was quoted or a block scalar (always a string).
    Scalar {
        /// The scalar's text after YAML unescaping.
        text: String,
        /// True for an unquoted scalar, whose type (null, bool, number) is resolved from its text.
        plain: bool,
    },
    /// A sequence of values.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax error, or a document past the limits below.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// What the scanner said.
    pub message: String,
    /// Where it said it.
    pub span: Span,
    /// How to fix it, when we know.
    pub hint: Option<String>,
}

/// The scanner's error, moved onto the tab it complains about: the scanner reports a tab at the
/// start of the value it was reading, often a line above the tab itself.
fn scanner_error(source: &str, info: &str, span: Span) -> SyntaxError {
    if !info.contains("tab") {
        return SyntaxError {
            message: info.to_string(),
            span,
            hint: None,
        };
    }
    let tab = source
        .lines()
        .enumerate()
        .skip(span.line.saturating_sub(1))
        .find_map(|(i, line)| {
            let column = line.chars().position(|c| c == '\t')?;
            Some(Span {
                line: i + 1,
                column: column + 1,
            })
        });
    SyntaxError {
        message: info.to_string(),
        span: tab.unwrap_or(span),
        hint: Some("indent with spaces: YAML does not allow tabs there".into()),
    }
}

/// The deepest nesting of sequences and mappings accepted. A rules file needs about six levels;
/// the cap keeps every recursive walk of the tree (clone, drop, the deserializer) far from the
/// end of the stack, whatever the document.
pub const MAX_DEPTH: usize = 256;

/// Aliases may copy this many nodes whatever the document's size. Each copied node costs about
/// 50 bytes, so a document of aliases of aliases (a "billion laughs") stops before 100 MB
/// instead of eating all memory; a real rules file sharing settings through `<<: *defaults`
/// copies a few nodes per rule.
pub const ALIAS_NODE_FLOOR: usize = 1_000_000;

/// The most nodes a document may hold, written or copied by aliases (a scalar's text counting
/// as in [`SCALAR_BYTES_PER_NODE`]). A node ends up costing the loader a few hundred bytes
/// (a `run:` item becomes a template), so this keeps any document well under 1 GiB; a rules
/// file of ten thousand rules holds about a hundred thousand.
pub const MAX_NODES: usize = 1_000_000;

/// A scalar's text counts one node more per this many bytes (about what a node costs).
pub const SCALAR_BYTES_PER_NODE: usize = 64;

/// Above [`ALIAS_NODE_FLOOR`], aliases may copy this many nodes for each node written in the
/// document: every rule of a large file may still merge a defaults block several times its size.
pub const ALIAS_NODES_PER_WRITTEN_NODE: usize = 4;

impl Node {
    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The items when this node is a sequence; a scalar counts as a one-item list.
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            NodeKind::Seq(items) => items,
            _ => std::slice::from_ref(self),
        }
    }

    /// The text when this node is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// Parses one YAML document; `Ok(None)` for an empty one.
///
/// Events are pulled one at a time (yaml-rust2's own `load` recurses once per level, which a
/// deep document would overflow), and parsing stops at the first error.
///
/// # Errors
/// Returns the scanner's error, positioned, for malformed YAML; an error at the offending alias
/// or collection when the document is nested deeper than [`MAX_DEPTH`] or its aliases copy more
/// nodes than the budget allows.
pub fn parse(source: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = TreeBuilder {
        source,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        error: None,
        written: 0,
        copied: 0,
        kept: 0,
    };
    let mut parser = Parser::new_from_str(source);
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| scanner_error(source, e.info(), Span::from_marker(*e.marker())))?;
        let end = matches!(event, Event::DocumentEnd | Event::StreamEnd);
        builder.on_event(event, mark);
        if let Some(error) = builder.error.take() {
            return Err(error);
        }
        if end {
            return Ok(builder.root);
        }
    }
}

/// The text of the alias starting at char `index` (`*name`), for an error message.
fn alias_name(source: &str, index: usize) -> String {
    source
        .chars()
        .skip(index)
        .take(200)
        .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
        .collect()
}

/// What a node costs to copy: its nodes, and the levels of lists and mappings it nests.
#[derive(Debug, Clone, Copy)]
struct Cost {
    size: usize,
    height: usize,
}

impl Cost {
    /// A scalar counts a node per [`SCALAR_BYTES_PER_NODE`] of its text besides itself, so
    /// that aliases of one long string cannot copy gigabytes within the node budget.
    fn scalar(text: &str) -> Cost {
        Cost {
            size: 1 + text.len() / SCALAR_BYTES_PER_NODE,
            height: 0,
        }
    }
    const EMPTY_COLLECTION: Cost = Cost { size: 1, height: 1 };

    /// This collection's cost once `child` is in it.
    fn add(&mut self, child: Cost) {
        self.size = self.size.saturating_add(child.size);
        self.height = self.height.max(child.height + 1);
    }
}

enum Partial {
    Seq(Span, Vec<Node>, usize, Cost),
    Map(MapBuilder),
}

/// A mapping being built: `<<` merge sources are kept apart and applied at its end, so that
/// explicit keys win wherever they are written.
struct MapBuilder {
    first_key: Option<Span>,
    entries: Vec<(Node, Node)>,
    merges: Vec<Node>,
    pending_key: Option<Node>,
    anchor: usize,
    /// The mapping so far.
    cost: Cost,
}

/// Turns the parser's event stream into a [`Node`] tree, resolving aliases and `<<` merge keys,
/// within [`MAX_DEPTH`] and the alias budget.
struct TreeBuilder<'s> {
    /// The text, to name an alias in an error.
    source: &'s str,
    stack: Vec<Partial>,
    /// Each anchored node with what an alias of it copies.
    anchors: HashMap<usize, (Node, Cost)>,
    root: Option<Node>,
    error: Option<SyntaxError>,
    /// Nodes written in the document so far (scalars and collections, not alias copies).
    written: usize,
    /// Nodes copied by aliases so far.
    copied: usize,
    /// Nodes kept for anchors so far (each anchored node is kept whole, nested ones again).
    kept: usize,
}

impl TreeBuilder<'_> {
    fn push_value(&mut self, node: Node, anchor: usize, cost: Cost) {
        if anchor != 0 {
            // Keeping the anchored node is a copy too: anchors nested in anchors would
            // otherwise cost the document's size once per level, outside the budget.
            let budget =
                ALIAS_NODE_FLOOR.max(self.written.saturating_mul(ALIAS_NODES_PER_WRITTEN_NODE));
            self.kept = self.kept.saturating_add(cost.size);
            if self.kept > budget && self.error.is_none() {
                self.error = Some(SyntaxError {
                    message: format!(
                        "anchors and aliases would copy more than {budget} nodes (anchors nested \
                         in anchors are kept once per level)"
                    ),
                    span: node.span,
                    hint: Some("write the shared values out, or nest fewer anchors".into()),
                });
                return;
            }
            self.anchors.insert(anchor, (node.clone(), cost));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Partial::Seq(_, items, _, total)) => {
                total.add(cost);
                items.push(node);
            }
            Some(Partial::Map(map)) => {
                map.cost.add(cost);
                match map.pending_key.take() {
                    None => {
                        map.first_key.get_or_insert(node.span);
                        map.pending_key = Some(node);
                    }
                    Some(key) if matches!(&key.kind, NodeKind::Scalar { text, plain: true } if text == "<<") =>
                    {
                        map.merges.push(node);
                    }
                    Some(key) => map.entries.push((key, node)),
                }
            }
        }
    }

    /// Opens a collection unless that would nest deeper than [`MAX_DEPTH`].
    fn open(&mut self, partial: Partial, span: Span) {
        if self.stack.len() >= MAX_DEPTH {
            self.error = Some(SyntaxError {
                message: format!("YAML nested deeper than {MAX_DEPTH} levels"),
                span,
                hint: Some(
                    "a rules file needs a handful of levels; this looks generated or corrupt"
                        .into(),
                ),
            });
            return;
        }
        self.written += 1;
        if self.is_over_node_limit(span) {
            return;
        }
        self.stack.push(partial);
    }

    /// Records an error when the document holds more than [`MAX_NODES`] nodes so far.
    fn is_over_node_limit(&mut self, span: Span) -> bool {
        if self.written.saturating_add(self.copied) <= MAX_NODES {
            return false;
        }
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                message: format!(
                    "the document holds more than {MAX_NODES} values (each alias counts what it \
                     copies, a long string one per {SCALAR_BYTES_PER_NODE} bytes)"
                ),
                span,
                hint: Some(
                    "a rules file holds a few thousand; this looks generated or hostile".into(),
                ),
            });
        }
        true
    }

    /// Copies the anchored node an alias names, unless that would exceed the budget or nest
    /// deeper than [`MAX_DEPTH`] (aliases of deep anchors inside deep anchors add up).
    fn alias(&mut self, id: usize, span: Span, mark: Marker) {
        let Some((_, cost)) = self.anchors.get(&id) else {
            self.error = Some(SyntaxError {
                message: "alias names an unknown anchor".into(),
                span,
                hint: Some("define the anchor (`&name`) before the alias (`*name`)".into()),
            });
            return;
        };
        let budget =
            ALIAS_NODE_FLOOR.max(self.written.saturating_mul(ALIAS_NODES_PER_WRITTEN_NODE));
        let (size, height) = (cost.size, cost.height);
        if self.stack.len() + height > MAX_DEPTH {
            let name = alias_name(self.source, mark.index());
            self.error = Some(SyntaxError {
                message: format!(
                    "alias `{name}` would nest {height} levels inside {}, deeper than \
                     {MAX_DEPTH} levels",
                    self.stack.len()
                ),
                span,
                hint: Some(
                    "a rules file needs a handful of levels; write the shared values out".into(),
                ),
            });
            return;
        }
        if self.copied.saturating_add(size) > budget {
            let name = alias_name(self.source, mark.index());
            self.error = Some(SyntaxError {
                message: format!(
                    "alias `{name}` would copy {size} more nodes, past the limit of {budget} \
                     nodes copied by aliases (aliases of aliases grow exponentially)"
                ),
                span,
                hint: Some(format!(
                    "write the shared values out, or alias them fewer times; aliases may copy \
                     {ALIAS_NODE_FLOOR} nodes, or {ALIAS_NODES_PER_WRITTEN_NODE} per node \
                     written when that is more"
                )),
            });
            return;
        }
        self.copied += size;
        if self.is_over_node_limit(span) {
            return;
        }
        let Some((node, cost)) = self.anchors.get(&id) else {
            return;
        };
        let (mut node, cost) = (node.clone(), *cost);
        node.span = span;
        self.push_value(node, 0, cost);
    }
}

/// Appends the entries of `<<` merge sources whose keys are not set explicitly.
fn apply_merges(entries: &mut Vec<(Node, Node)>, merges: Vec<Node>) {
    if merges.is_empty() {
        return;
    }
    let mut present: HashSet<String> = entries
        .iter()
        .filter_map(|(k, _)| k.as_scalar().map(str::to_string))
        .collect();
    for value in merges {
        let sources: Vec<&Node> = match &value.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![&value],
        };
        for source in sources {
            let NodeKind::Map(merged) = &source.kind else {
                continue;
            };
            for (k, v) in merged {
                let fresh = match k.as_scalar() {
                    Some(name) => present.insert(name.to_string()),
                    None => true,
                };
                if fresh {
                    entries.push((k.clone(), v.clone()));
                }
            }
        }
    }
}

impl MarkedEventReceiver for TreeBuilder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let span = Span::from_marker(mark);
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                let cost = Cost::scalar(&text);
                self.written += cost.size;
                if self.is_over_node_limit(span) {
                    return;
                }
                self.push_value(
                    Node {
                        kind: NodeKind::Scalar { text, plain },
                        span,
                    },
                    anchor,
                    cost,
                );
            }
            Event::SequenceStart(anchor, _) => self.open(
                Partial::Seq(span, Vec::new(), anchor, Cost::EMPTY_COLLECTION),
                span,
            ),
            Event::MappingStart(anchor, _) => self.open(
                Partial::Map(MapBuilder {
                    first_key: None,
                    entries: Vec::new(),
                    merges: Vec::new(),
                    pending_key: None,
                    anchor,
                    cost: Cost::EMPTY_COLLECTION,
                }),
                span,
            ),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, cost) = match self.stack.pop() {
                    Some(Partial::Seq(span, items, anchor, cost)) => (
                        Node {
                            kind: NodeKind::Seq(items),
                            span,
                        },
                        anchor,
                        cost,
                    ),
                    Some(Partial::Map(mut map)) => {
                        apply_merges(&mut map.entries, map.merges);
                        (
                            Node {
                                kind: NodeKind::Map(map.entries),
                                // A block mapping's start mark lands past its first key; use the key.
                                span: map.first_key.unwrap_or(span),
                            },
                            map.anchor,
                            map.cost,
                        )
                    }
                    None => return,
                };
                self.push_value(node, anchor, cost);
            }
            Event::Alias(id) => self.alias(id, span, mark),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests;
