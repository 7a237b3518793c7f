//! A YAML document as a tree of nodes that remember where they stand in the source; `de` is a
//! serde `Deserializer` over that tree (two concepts, two files: building the tree from
//! yaml-rust2's events, and reading typed values out of it).
//!
//! Why not serde_yaml: it stops at the first error and forgets positions once a value is parsed,
//! but `check` must list every error of a rules file, each at its value. Keeping a position on
//! every node lets any error found later (a bad regex, an unknown template variable) point at
//! the exact scalar, and lets each rule be deserialized on its own so one bad rule hides no other.

use std::collections::HashMap;

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

/// A YAML syntax error.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// What the scanner said.
    pub message: String,
    /// Where it said it.
    pub span: Span,
}

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
/// # Errors
/// Returns the scanner's error, positioned, for malformed YAML.
pub fn parse(source: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(source);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        message: e.info().to_string(),
        span: Span::from_marker(*e.marker()),
    })?;
    if let Some(message) = builder.error {
        return Err(message);
    }
    Ok(builder.root)
}

enum Partial {
    Seq(Span, Vec<Node>, usize),
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
}

/// Turns the parser's event stream into a [`Node`] tree, resolving aliases and `<<` merge keys.
#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Partial>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl TreeBuilder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Partial::Seq(_, items, _)) => items.push(node),
            Some(Partial::Map(map)) => match map.pending_key.take() {
                None => {
                    map.first_key.get_or_insert(node.span);
                    map.pending_key = Some(node);
                }
                Some(key) if matches!(&key.kind, NodeKind::Scalar { text, plain: true } if text == "<<") =>
                {
                    map.merges.push(node);
                }
                Some(key) => map.entries.push((key, node)),
            },
        }
    }
}

/// Appends the entries of `<<` merge sources whose keys are not set explicitly.
fn apply_merges(entries: &mut Vec<(Node, Node)>, merges: Vec<Node>) {
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
                let present = entries.iter().any(|(existing, _)| {
                    existing.as_scalar().is_some() && existing.as_scalar() == k.as_scalar()
                });
                if !present {
                    entries.push((k.clone(), v.clone()));
                }
            }
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let span = Span::from_marker(mark);
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.push_value(
                    Node {
                        kind: NodeKind::Scalar { text, plain },
                        span,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Partial::Seq(span, Vec::new(), anchor))
            }
            Event::MappingStart(anchor, _) => self.stack.push(Partial::Map(MapBuilder {
                first_key: None,
                entries: Vec::new(),
                merges: Vec::new(),
                pending_key: None,
                anchor,
            })),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Partial::Seq(span, items, anchor)) => (
                        Node {
                            kind: NodeKind::Seq(items),
                            span,
                        },
                        anchor,
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
                        )
                    }
                    None => return,
                };
                self.push_value(node, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let mut node = node.clone();
                    node.span = span;
                    self.push_value(node, 0);
                }
                None => {
                    self.error.get_or_insert(SyntaxError {
                        message: "alias names an unknown anchor".into(),
                        span,
                    });
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(source: &str) -> Node {
        parse(source)
            .expect("valid yaml")
            .expect("non-empty document")
    }

    #[test]
    fn spans_are_one_based() {
        let root = node("a: 1\nlist:\n  - x\n");
        let list = root.get("list").expect("list");
        assert_eq!(list.items()[0].span, Span { line: 3, column: 5 });
        assert_eq!(root.get("a").expect("a").span, Span { line: 1, column: 4 });
    }

    #[test]
    fn block_mapping_span_is_its_first_key() {
        let root = node("rules:\n  - name: x\n    retries: 1\n");
        let rule = &root.get("rules").expect("rules").items()[0];
        assert_eq!(rule.span, Span { line: 2, column: 5 });
    }

    #[test]
    fn syntax_error_is_positioned() {
        let err = parse("a: [1, 2\nb: 3\n").expect_err("unclosed");
        assert_eq!(err.span.line, 2);
    }
}
