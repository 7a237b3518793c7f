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

/// The classic "billion laughs": nine levels of nine aliases, 10^9 scalars if expanded.
fn billion_laughs() -> String {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let aliases = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{aliases}]\n"));
    }
    text
}

#[test]
fn alias_bomb_stops_at_the_alias_that_breaks_the_budget() {
    let text = billion_laughs();
    assert!(text.len() < 600, "{} bytes", text.len());
    let err = parse(&text).expect_err("over budget");
    // Copies so far: b 90, c 819, d 7,380, e 66,429, f 597,870 = 672,588; one `*f`
    // (597,871 nodes) more passes 1,000,000: the first alias on line 7 (`g: &g [*f,...`).
    assert_eq!(err.span, Span { line: 7, column: 8 }, "{err:?}");
    assert!(err.message.contains("alias `*f`"), "{}", err.message);
    assert!(err.message.contains("1000000"), "{}", err.message);
    assert!(err.hint.expect("hint").contains("alias"));
}

#[test]
fn anchors_nested_in_anchors_count_against_the_budget() {
    // 200 nested anchors around 10,000 scalars: keeping each anchored node whole would hold
    // 2,000,000 nodes for a document of 10,200.
    let mut text = String::from("deep: ");
    for level in 0..200 {
        text.push_str(&format!("&a{level} ["));
    }
    text.push_str(&vec!["x"; 10_000].join(", "));
    text.push_str(&"]".repeat(200));
    text.push('\n');
    let err = parse(&text).expect_err("over budget");
    assert!(
        err.message.contains("anchors nested in anchors"),
        "{}",
        err.message
    );
    assert_eq!(err.span.line, 1);
}

#[test]
fn a_document_past_the_node_limit_is_refused_whether_written_or_aliased() {
    let written = format!("run: [{}]\n", vec!["a"; MAX_NODES + 1].join(","));
    let err = parse(&written).expect_err("too many values");
    assert!(
        err.message.contains("more than 1000000 values"),
        "{}",
        err.message
    );
    // Four aliases of a list of 300,000 stay within the alias budget (4 per node written)
    // but not within the node limit.
    let list = vec!["a"; 300_000].join(",");
    let aliased = format!("x: &x [{list}]\nrun: [*x, *x, *x, *x]\n");
    let err = parse(&aliased).expect_err("too many values");
    assert!(
        err.message.contains("more than 1000000 values"),
        "{}",
        err.message
    );
    assert_eq!(err.span.line, 2);
    // A long string copied by aliases counts its length.
    let long = "x".repeat(1 << 20);
    let strings = format!("x: &x \"{long}\"\nrun: [{}]\n", vec!["*x"; 100].join(","));
    let err = parse(&strings).expect_err("too many bytes");
    assert!(err.message.contains("more than"), "{}", err.message);
}

#[test]
fn aliases_within_the_budget_still_resolve() {
    let root = node("base: &b {x: 1, y: [2, 3]}\nuse: {<<: *b, x: 9}\ncopy: *b\n");
    let used = root.get("use").expect("use");
    assert_eq!(used.get("x").and_then(Node::as_scalar), Some("9"));
    assert_eq!(used.get("y").expect("merged y").items().len(), 2);
    let copy = root.get("copy").expect("copy");
    assert_eq!(copy.span, Span { line: 3, column: 7 });
    assert_eq!(copy.get("x").and_then(Node::as_scalar), Some("1"));
}

#[test]
fn deep_block_nesting_is_refused_at_the_level_past_the_cap() {
    // 100,000 levels of `- ` on one line: yaml-rust2's recursive `load` would overflow.
    let text = format!("{}x\n", "- ".repeat(100_000));
    let err = parse(&text).expect_err("too deep");
    assert!(err.message.contains("deeper than 256"), "{}", err.message);
    assert_eq!(
        err.span,
        Span {
            line: 1,
            column: 2 * MAX_DEPTH + 1
        }
    );
}

#[test]
fn deep_flow_nesting_is_refused() {
    let text = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let err = parse(&text).expect_err("too deep");
    assert_eq!(err.span.line, 1);
    let at_cap = format!("{}{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(
        parse(&at_cap).is_err(),
        "the scanner itself stops at 255 flow levels"
    );
    let fine = format!("{}{}\n", "[".repeat(100), "]".repeat(100));
    assert!(parse(&fine).is_ok());
}

#[test]
fn aliases_cannot_stack_deep_anchors_past_the_cap() {
    // Each anchor wraps the previous one in 200 more levels: few nodes, but the second
    // alias would nest `*a1` (201 levels) inside 201.
    let mut text = String::from("a0: &a0 [x]\n");
    for i in 1..4 {
        let open = "[".repeat(200);
        let close = "]".repeat(200);
        text.push_str(&format!("a{i}: &a{i} {open}*a{}{close}\n", i - 1));
    }
    let err = parse(&text).expect_err("too deep through aliases");
    assert!(err.message.contains("alias `*a1`"), "{}", err.message);
    assert!(err.message.contains("deeper than 256"), "{}", err.message);
    assert_eq!(err.span.line, 3);
}

#[test]
fn nesting_at_the_cap_is_accepted() {
    let text = format!("{}x\n", "- ".repeat(MAX_DEPTH));
    let mut node = &parse(&text).expect("valid").expect("non-empty");
    let mut depth = 0;
    while let NodeKind::Seq(items) = &node.kind {
        depth += 1;
        node = &items[0];
    }
    assert_eq!(depth, MAX_DEPTH);
}

#[test]
fn syntax_error_is_positioned() {
    let err = parse("a: [1, 2\nb: 3\n").expect_err("unclosed");
    assert_eq!(err.span.line, 2);
}
