//! `shotrouter lineage` (what a file was made from, or what was made from it), `shotrouter
//! stale` (products made from inputs or rules that changed since) and `rerun --stale`. Text
//! is an indented tree, one line per job, with a marker where the input changed since the
//! job read it; JSON is the store's report as it is (the API's too).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::app::human::{datetime_ns_in, local_zone, size, time_ms_in};
use crate::app::ops::{json, open, print, runtime};
use crate::app::style::{Paint, paint};
use crate::error::Error;
use crate::os::quote::shell_quote;
use crate::store::lineage::{Direction, LineageEdge, LineageReport, StaleProduct};
use crate::store::{self, Location};

pub use crate::store::lineage::DEFAULT_DEPTH;

/// `shotrouter lineage PATH`.
///
/// # Errors
/// No store, or a database error.
pub fn lineage(
    store: &Location,
    path: &Path,
    direction: Direction,
    depth: u32,
    as_json: bool,
) -> Result<ExitCode, Error> {
    let abs = crate::rules::absolute(path);
    let history = open(store)?;
    let report = history.lineage(&abs, direction, depth).map_err(runtime)?;
    if as_json {
        return json(&report);
    }
    print(&render(&report, store::now_ms()))
}

fn quoted(path: &str) -> String {
    shell_quote(path.as_bytes())
}

/// The report as an indented tree: under each file, the files it was made from (up) or the
/// products made from it (down), each with the job that linked them.
pub fn render(report: &LineageReport, now_ms: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", paint(&quoted(&report.path), Paint::Bold));
    if report.edges.is_empty() {
        let _ = writeln!(
            out,
            "  {}",
            match report.direction {
                Direction::Up =>
                    "not made by shotrouter (no job's product), or unknown to the store",
                Direction::Down => "nothing made from it (no job matched or read it)",
            }
        );
        return out;
    }
    // The edges under each file: up, those that made it; down, those that read it.
    let mut under: HashMap<&str, Vec<&LineageEdge>> = HashMap::new();
    for edge in &report.edges {
        let parent = match report.direction {
            Direction::Up => edge.product.as_str(),
            Direction::Down => edge.input.as_str(),
        };
        under.entry(parent).or_default().push(edge);
    }
    let mut shown: HashSet<&str> = HashSet::new();
    shown.insert(report.path.as_str());
    // Depth first, so each file's line is followed by its own; iterative, so a long chain
    // cannot overflow the stack.
    let mut stack: Vec<(&LineageEdge, usize)> = under
        .get(report.path.as_str())
        .map(|edges| edges.iter().rev().map(|e| (*e, 1)).collect())
        .unwrap_or_default();
    let mut stale = 0;
    let tz = local_zone();
    while let Some((edge, level)) = stack.pop() {
        let child = match report.direction {
            Direction::Up => edge.input.as_str(),
            Direction::Down => edge.product.as_str(),
        };
        if edge.input_changed {
            stale += 1;
        }
        line(
            &mut out,
            report.direction,
            edge,
            child,
            level,
            (now_ms, &tz),
        );
        // A file reached twice (a diamond) is expanded once, where it is first shown.
        if shown.insert(child)
            && let Some(edges) = under.get(child)
        {
            stack.extend(edges.iter().rev().map(|e| (*e, level + 1)));
        }
    }
    if report.truncated {
        let _ = writeln!(
            out,
            "{}",
            paint("… more beyond --depth; raise it to see them", Paint::Yellow)
        );
    }
    if stale > 0 {
        let _ = writeln!(
            out,
            "{}",
            paint(
                &format!(
                    "{stale} input{} changed since the job that read {} ran: its product is stale (`shotrouter stale`, `shotrouter rerun --stale --rule RULE`)",
                    if stale == 1 { "" } else { "s" },
                    if stale == 1 { "it" } else { "them" }
                ),
                Paint::Yellow
            )
        );
    }
    out
}

/// One edge: the file it leads to, then how (role, rule, job, version read, when).
fn line(
    out: &mut String,
    direction: Direction,
    edge: &LineageEdge,
    child: &str,
    level: usize,
    (now_ms, tz): (i64, &jiff::tz::TimeZone),
) {
    let indent = "  ".repeat(level);
    let arrow = match direction {
        Direction::Up => "←",
        Direction::Down => "→",
    };
    let mut how = format!(
        "{} `{}` job {}",
        match (direction, edge.role) {
            (Direction::Up, "declared") => "declared input of",
            (Direction::Up, _) => "matched by",
            (Direction::Down, "declared") => "read (declared) by",
            (Direction::Down, _) => "matched by",
        },
        edge.rule,
        edge.job
    );
    if let Some((_, ino, bytes, mtime)) = edge.input_version {
        let _ = write!(
            how,
            ", read {} {} ino {ino}",
            datetime_ns_in(mtime, tz),
            size(bytes)
        );
    }
    if let Some(at) = edge.finished_at {
        let _ = write!(how, ", done {}", time_ms_in(at, now_ms, tz));
    }
    if let Some(node) = &edge.node {
        let _ = write!(how, " on {node}");
    }
    if let Some(run) = &edge.farm_run {
        let _ = write!(how, " ({run})");
    }
    let _ = write!(out, "{indent}{arrow} {}  {how}", quoted(child));
    if edge.input_changed {
        let _ = write!(
            out,
            "  {}",
            paint("CHANGED since: the input has a newer version", Paint::Red)
        );
    }
    out.push('\n');
}

/// `shotrouter stale`.
///
/// # Errors
/// No store, or a database error.
pub fn stale(store: &Location, as_json: bool) -> Result<ExitCode, Error> {
    let history = open(store)?;
    let products = history.stale().map_err(runtime)?;
    if as_json {
        return json(&products);
    }
    print(&render_stale(&products))
}

/// The stale products, each with why.
pub fn render_stale(products: &[StaleProduct]) -> String {
    let mut out = String::new();
    if products.is_empty() {
        out.push_str("no stale products: every product was made from the current versions of its declared inputs, by its rule's current definition\n");
        return out;
    }
    let mut rules: Vec<&str> = Vec::new();
    for p in products {
        let _ = writeln!(
            out,
            "{}  rule `{}` job {}",
            paint(&quoted(&p.product), Paint::Bold),
            p.rule,
            p.job
        );
        for input in &p.changed_inputs {
            let _ = writeln!(out, "  {} {input}", paint("input changed:", Paint::Yellow));
        }
        if p.rule_changed {
            let _ = writeln!(
                out,
                "  {}",
                paint("the rule's definition changed since", Paint::Yellow)
            );
        }
        if !rules.contains(&p.rule.as_str()) {
            rules.push(&p.rule);
        }
    }
    let _ = writeln!(
        out,
        "{} stale product{}; to make {} again: {}",
        products.len(),
        if products.len() == 1 { "" } else { "s" },
        if products.len() == 1 { "it" } else { "them" },
        rules
            .iter()
            .map(|r| format!(
                "shotrouter rerun --stale --rule {}",
                shell_quote(r.as_bytes())
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    out
}

/// `shotrouter rerun --stale --rule RULE`.
///
/// # Errors
/// No store, an unknown rule, or a database error.
pub fn rerun_stale(store: &Location, rule: &str, as_json: bool) -> Result<ExitCode, Error> {
    let mut history = open(store)?;
    crate::app::ops::check_rule(history.as_ref(), rule)?;
    let count = history.rerun_stale(rule).map_err(runtime)?;
    if as_json {
        return json(&serde_json::json!({ "rule": rule, "stale": true, "queued": count }));
    }
    print(&format!(
        "queued {count} job{} of rule `{rule}` whose products are stale; the daemon plans them with the current rules\n",
        if count == 1 { "" } else { "s" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(depth: u32, input: &str, role: &'static str, job: i64, product: &str) -> LineageEdge {
        LineageEdge {
            depth,
            input: input.into(),
            role,
            input_version: Some((0, 7, 100, 1_767_323_045_123_456_789)),
            input_changed: role == "declared",
            job,
            rule: if job == 1 { "copy-to-san" } else { "review" }.into(),
            node: Some("render-01".into()),
            farm_run: None,
            product: product.into(),
            finished_at: Some(1_767_323_045_000),
        }
    }

    #[test]
    fn up_is_a_tree_with_the_changed_input_marked() {
        crate::app::style::set(crate::app::style::ColorChoice::Never);
        let report = LineageReport {
            path: "/san/a b.mov".into(),
            direction: Direction::Up,
            edges: vec![
                edge(1, "/shots/a.mov", "matched", 1, "/san/a b.mov"),
                edge(2, "/shots/a.####.tif", "matched", 2, "/shots/a.mov"),
                edge(2, "/shots/show.cube", "declared", 2, "/shots/a.mov"),
            ],
            truncated: true,
        };
        let text = render(&report, 1_767_323_045_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "'/san/a b.mov'");
        assert!(
            lines[1].starts_with("  ← /shots/a.mov  matched by `copy-to-san` job 1"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("    ← '/shots/a.####.tif'  matched by `review` job 2"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("    ← /shots/show.cube  declared input of `review` job 2"),
            "{text}"
        );
        assert!(
            lines[3].ends_with("CHANGED since: the input has a newer version"),
            "{text}"
        );
        assert!(!lines[2].contains("CHANGED"));
        assert!(text.contains("more beyond --depth"));
        assert!(text.contains("1 input changed since"));
    }

    #[test]
    fn stale_names_the_inputs_and_the_rerun() {
        crate::app::style::set(crate::app::style::ColorChoice::Never);
        let text = render_stale(&[StaleProduct {
            product: "/shots/a.mov".into(),
            job: 2,
            rule: "review".into(),
            changed_inputs: vec!["/shots/show.cube (a → b)".into()],
            rule_changed: true,
        }]);
        assert!(
            text.contains("input changed: /shots/show.cube (a → b)"),
            "{text}"
        );
        assert!(text.contains("the rule's definition changed since"));
        assert!(text.contains("shotrouter rerun --stale --rule review"));
    }
}
