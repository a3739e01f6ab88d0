//! Charts drawn on the server as SVG: no chart library to vendor, nothing to run in the
//! browser, and every number on a chart is in the page (each point and bar carries its value
//! in `data-value` and a tooltip), so what the chart says can be checked against the service
//! that answered it, by a test or by a curious operator.

use std::fmt::Write as _;

use crate::html::escape;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;
const RIGHT: f64 = 8.0;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its name in the legend and in each point's `data-series`.
    pub name: String,
    /// A CSS colour.
    pub color: &'static str,
    /// (bucket start in Unix seconds, value), in time order.
    pub points: Vec<(i64, f64)>,
}

/// A line chart of `series` over `[start, end)` (Unix seconds) in buckets of `bucket`
/// seconds, values in `unit`. A line is broken where a bucket has no point: nothing is drawn
/// where nothing was measured (a series of counts gives its empty buckets as zeros).
pub fn lines(
    id: &str,
    title: &str,
    unit: &str,
    start: i64,
    end: i64,
    bucket: i64,
    series: &[Series],
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let span = (end - start).max(1) as f64;
    let x = |at: i64| LEFT + (at - start) as f64 / span * (WIDTH - LEFT - RIGHT);
    let y = |value: f64| HEIGHT - BOTTOM - value / top * (HEIGHT - BOTTOM - TOP);
    let mut svg = frame(id, title, top, unit);
    let with_date = end - start > 86_400;
    let time_label = |at: i64| time_label(at, with_date);
    for (at, label) in [(start, time_label(start)), (end, time_label(end))] {
        let anchor = if at == start { "start" } else { "end" };
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"{anchor}\">{label}</text>",
            x(at),
            HEIGHT - 6.0
        );
    }
    for s in series {
        for run in s
            .points
            .chunk_by(|before, after| after.0 - before.0 <= bucket.max(1))
        {
            let path: Vec<String> = run
                .iter()
                .map(|(at, value)| format!("{:.1},{:.1}", x(*at), y(*value)))
                .collect();
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                s.color,
                path.join(" ")
            );
        }
        for (at, value) in &s.points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\" data-series=\"{}\" data-at=\"{at}\" data-value=\"{value}\"><title>{} at {}: {} {}</title></circle>",
                x(*at),
                y(*value),
                s.color,
                escape(&s.name),
                escape(&s.name),
                time_label(*at),
                shown(*value),
                escape(unit),
            );
        }
    }
    svg.push_str("</svg>");
    let legend: String = series
        .iter()
        .map(|s| {
            format!(
                "<span style=\"color:{}\">&#9632; {}</span> ",
                s.color,
                escape(&s.name)
            )
        })
        .collect();
    format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>{svg}<div class=\"legend\">{legend}</div></figure>",
        escape(title)
    )
}

/// A horizontal bar chart of `rows` (label, value), largest first as given.
pub fn bars(id: &str, title: &str, unit: &str, rows: &[(String, f64)]) -> String {
    if rows.is_empty() {
        return format!(
            "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption><p>None in this range.</p></figure>",
            escape(title)
        );
    }
    let max = rows.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let row_height = 20.0;
    let height = rows.len() as f64 * row_height + 4.0;
    let label_width = 220.0;
    let mut svg = format!(
        "<svg role=\"img\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" aria-label=\"{}\">",
        escape(title)
    );
    for (n, (label, value)) in rows.iter().enumerate() {
        let y = n as f64 * row_height + 2.0;
        let width = value / top * (WIDTH - label_width - 60.0);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
             <rect x=\"{label_width}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"#b8533e\" data-label=\"{}\" data-value=\"{value}\"><title>{}: {} {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            label_width - 6.0,
            y + 13.0,
            escape(&truncated(label, 36)),
            row_height - 6.0,
            escape(label),
            escape(label),
            shown(*value),
            escape(unit),
            label_width + width + 4.0,
            y + 13.0,
            shown(*value),
        );
    }
    svg.push_str("</svg>");
    format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>{svg}</figure>",
        escape(title)
    )
}

/// The axes and the grid of a line chart whose values reach `top`.
fn frame(id: &str, title: &str, top: f64, unit: &str) -> String {
    let mut svg = format!(
        "<svg role=\"img\" aria-labelledby=\"{id}-title\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\"><title id=\"{id}-title\">{}</title>",
        escape(title)
    );
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let y = HEIGHT - BOTTOM - f64::from(step) / 4.0 * (HEIGHT - BOTTOM - TOP);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e6ea\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 3.0,
            shown(value),
        );
    }
    if !unit.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#667\">{}</text>",
            LEFT + 4.0,
            TOP + 10.0,
            escape(unit)
        );
    }
    svg
}

/// A round number at least `max` (1, 2 or 5 times a power of ten), so the grid reads well.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|candidate| *candidate >= max)
        .unwrap_or(10.0 * power)
}

/// A value as people read it: whole numbers without decimals, others with one or two.
pub fn shown(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// `HH:MM` (UTC) of a Unix time; with the date (`MM-DD HH:MM`) on charts longer than a day.
fn time_label(at: i64, with_date: bool) -> String {
    let seconds = at.rem_euclid(86_400);
    let time = format!("{:02}:{:02}", seconds / 3_600, seconds % 3_600 / 60);
    if !with_date {
        return time;
    }
    // "YYYY-MM-DD HH:MM:SS" -> "MM-DD HH:MM".
    let full = crate::time::when(Some(&prost_types::Timestamp {
        seconds: at,
        nanos: 0,
    }));
    format!("{} {time}", full.get(5..10).unwrap_or_default())
}

fn truncated(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(chars - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_ends_on_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(13.0), 20.0);
        assert_eq!(nice_ceiling(420.0), 500.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
    }

    #[test]
    fn every_point_carries_its_exact_value() {
        let chart = lines(
            "volume",
            "Messages",
            "messages",
            0,
            120,
            60,
            &[Series {
                name: "inbound".into(),
                color: "#000",
                points: vec![(0, 3.0), (60, 12.5)],
            }],
        );
        assert!(
            chart.contains("data-series=\"inbound\" data-at=\"60\" data-value=\"12.5\""),
            "{chart}"
        );
        assert!(chart.contains("inbound at 00:01: 12.5 messages"), "{chart}");
    }

    #[test]
    fn a_line_breaks_where_a_bucket_has_no_point_and_long_charts_have_dates() {
        let series = Series {
            name: "p50".into(),
            color: "#000",
            points: vec![(0, 1.0), (60, 2.0), (240, 3.0)],
        };
        let chart = lines("x", "X", "s", 0, 300, 60, &[series]);
        assert_eq!(chart.matches("<polyline").count(), 2, "{chart}");
        let days = lines("x", "X", "s", 0, 3 * 86_400, 86_400, &[]);
        assert!(
            days.contains(">01-01 00:00<") && days.contains(">01-04 00:00<"),
            "{days}"
        );
    }

    #[test]
    fn labels_are_escaped_and_bars_hold_their_values() {
        let chart = bars(
            "failures",
            "Failures",
            "",
            &[("<b>blocked</b>".into(), 4.0)],
        );
        assert!(
            chart.contains("data-label=\"&lt;b&gt;blocked&lt;/b&gt;\" data-value=\"4\""),
            "{chart}"
        );
        assert!(!chart.contains("<b>"), "{chart}");
        assert!(bars("none", "Failures", "", &[]).contains("None in this range"));
    }
}
