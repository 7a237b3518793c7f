//! A line chart drawn as SVG text by the server: per series one polyline over the last 24 h,
//! a y scale from zero to the largest value, hour marks, and a legend. No library, nothing
//! fetched by the page: the text is small and the page shows it as an image, where no script
//! can run (a rule's name is escaped besides).

use std::fmt::Write as _;

use super::dashboard::escape;

/// Minutes across the chart: the last 24 h.
pub const SPAN_MINUTES: i64 = 24 * 60;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 22.0;

/// Colours of the series in turn (the page's own, then a few more).
const COLOURS: &[&str] = &[
    "#4fa3e0", "#5cb85c", "#d9a640", "#e0564f", "#a57fe0", "#4fd1c5", "#e07fb9", "#9aa5b1",
];

/// One line: a name and its (minute, value) points, minutes as unix minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The legend's text (a rule's name).
    pub name: String,
    /// Points in time order; a minute without a point is drawn as zero when `zero_gaps`.
    pub points: Vec<(i64, u64)>,
}

/// The chart of `series` over the [`SPAN_MINUTES`] ending at `now_minute`. With `zero_gaps`
/// a minute without a point counts as 0 (jobs done); without, the line joins the samples there
/// are (queue depth, sampled).
pub fn draw(title: &str, series: &[Series], now_minute: i64, zero_gaps: bool) -> String {
    let from = now_minute - SPAN_MINUTES;
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(_, v)| v))
        .max()
        .unwrap_or(0)
        .max(1);
    let x =
        |minute: i64| LEFT + (minute - from) as f64 * (WIDTH - LEFT - RIGHT) / SPAN_MINUTES as f64;
    let y = |value: u64| TOP + (1.0 - value as f64 / max as f64) * (HEIGHT - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"system-ui, sans-serif\" font-size=\"11\">\
         <title>{}</title><rect width=\"100%\" height=\"100%\" fill=\"#14171c\"/>",
        escape(title)
    );
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"15\" fill=\"#8b95a3\" text-anchor=\"end\">{}</text>",
        WIDTH - RIGHT,
        escape(title)
    );
    // Hour marks every 6 h, and the scale.
    for hours in [24, 18, 12, 6, 0] {
        let at = x(now_minute - hours * 60);
        let label = if hours == 0 {
            "now".to_string()
        } else {
            format!("-{hours} h")
        };
        let _ = write!(
            svg,
            "<line x1=\"{at:.1}\" y1=\"{TOP}\" x2=\"{at:.1}\" y2=\"{:.1}\" stroke=\"#2a3039\"/>\
             <text x=\"{at:.1}\" y=\"{:.1}\" fill=\"#8b95a3\" text-anchor=\"middle\">{label}</text>",
            HEIGHT - BOTTOM,
            HEIGHT - 6.0
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#3a424e\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#8b95a3\" text-anchor=\"end\">{max}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#8b95a3\" text-anchor=\"end\">0</text>",
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        LEFT - 6.0,
        TOP + 4.0,
        LEFT - 6.0,
        HEIGHT - BOTTOM
    );
    let mut legend_x = LEFT;
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points = line(&s.points, from, now_minute, zero_gaps);
        let text: Vec<String> = points
            .iter()
            .map(|&(m, v)| format!("{:.1},{:.1}", x(m), y(v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>",
            text.join(" "),
            escape(&s.name)
        );
        if let Some(&(m, v)) = points.last() {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"/>",
                x(m),
                y(v)
            );
        }
        let name = escape(&s.name);
        let _ = write!(
            svg,
            "<rect x=\"{legend_x:.1}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"15\" fill=\"#d8dde4\">{name}</text>",
            legend_x + 14.0
        );
        legend_x += 24.0 + 6.5 * s.name.chars().count() as f64;
    }
    if series.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#8b95a3\" text-anchor=\"middle\">nothing yet</text>",
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The points drawn of one series within `from..=to`: with `zero_gaps`, every minute from the
/// first to `to` (0 where none), so a rule idle for an hour drops to the axis.
fn line(points: &[(i64, u64)], from: i64, to: i64, zero_gaps: bool) -> Vec<(i64, u64)> {
    let inside = points
        .iter()
        .copied()
        .filter(|&(m, _)| m >= from && m <= to);
    if !zero_gaps {
        return inside.collect();
    }
    let by_minute: std::collections::BTreeMap<i64, u64> = inside.collect();
    let Some(&first) = by_minute.keys().next() else {
        return Vec::new();
    };
    (first.max(from)..=to)
        .map(|m| (m, by_minute.get(&m).copied().unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_becomes_a_polyline_with_its_name_escaped() {
        let svg = draw(
            "done",
            &[Series {
                name: "<script>alert(1)</script>".into(),
                points: vec![(1000, 3), (1002, 1)],
            }],
            1003,
            true,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("points");
        assert_eq!(
            points.split(' ').count(),
            4,
            "1000..=1003, gaps as zero: {points}"
        );
    }

    #[test]
    fn samples_outside_the_day_are_not_drawn_and_gaps_join_when_sampled() {
        assert_eq!(
            line(
                &[(0, 5), (2000, 1), (2003, 2)],
                2000 - SPAN_MINUTES + 1,
                2003,
                false
            ),
            [(2000, 1), (2003, 2)]
        );
    }
}
