//! Charts as inline SVG, drawn here on the server: grouped bars (counts per month) and lines
//! (a score over time). Each mark carries its series, label and value as `data-*` attributes
//! and a `<title>` tooltip, so the number behind every bar can be read (and tested) without
//! measuring pixels.

use std::fmt::Write as _;

use crate::http::respond::esc;

/// One series of a chart.
pub(super) struct Series {
    pub name: String,
    pub color: &'static str,
    /// One value per label; `None` where there is none (a gap in a line, no bar).
    pub values: Vec<Option<f64>>,
}

const W: f64 = 520.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

/// The colours series take in turn.
pub(super) const COLORS: [&str; 6] = [
    "#3b6fb6", "#d9822b", "#c23b3b", "#2f9e6e", "#8a5cc2", "#777777",
];

fn open(title: &str, series: &[Series]) -> String {
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\" data-chart=\"{t}\">\
         <title>{t}</title><text x=\"{LEFT}\" y=\"16\" font-size=\"13\" font-weight=\"600\">{t}</text>",
        t = esc(title)
    );
    // The legend, right-aligned on the title's line.
    let mut x = W - RIGHT;
    for s in series.iter().rev() {
        x -= 14.0 + 7.0 * s.name.chars().count() as f64;
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"7\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"16\" font-size=\"11\">{}</text>",
            s.color,
            x + 13.0,
            esc(&s.name)
        );
    }
    out
}

/// Axis lines, the y labels at `lo` and `hi` (and 0 when between), the x labels.
fn axes(out: &mut String, labels: &[String], lo: f64, hi: f64, y: &dyn Fn(f64) -> f64) {
    let (x0, x1) = (LEFT, W - RIGHT);
    let _ = write!(
        out,
        "<line x1=\"{x0}\" y1=\"{TOP}\" x2=\"{x0}\" y2=\"{b}\" stroke=\"#999\"/>",
        b = H - BOTTOM
    );
    let mut ticks = vec![lo, hi];
    if lo < 0.0 && hi > 0.0 {
        ticks.push(0.0);
    }
    for t in ticks {
        let _ = write!(
            out,
            "<line x1=\"{x0}\" y1=\"{yy:.1}\" x2=\"{x1}\" y2=\"{yy:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" font-size=\"10\" text-anchor=\"end\">{v}</text>",
            yy = y(t),
            tx = x0 - 4.0,
            ty = y(t) + 3.0,
            v = num(t)
        );
    }
    let step = (x1 - x0) / labels.len().max(1) as f64;
    for (i, l) in labels.iter().enumerate() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            x0 + step * (i as f64 + 0.5),
            H - BOTTOM + 14.0,
            esc(l)
        );
    }
}

/// A number as a label: whole numbers without decimals.
fn num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Grouped bars, one group per label, one bar per series; the axis starts at 0.
pub(super) fn bars(title: &str, labels: &[String], series: &[Series]) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |m, v| m.max(*v));
    let hi = if max <= 0.0 { 1.0 } else { max };
    let y = |v: f64| TOP + (H - BOTTOM - TOP) * (1.0 - v / hi);
    let mut out = open(title, series);
    axes(&mut out, labels, 0.0, hi, &y);
    let step = (W - RIGHT - LEFT) / labels.len().max(1) as f64;
    let bar = (step * 0.8) / series.len().max(1) as f64;
    for (i, l) in labels.iter().enumerate() {
        for (j, s) in series.iter().enumerate() {
            let Some(v) = s.values.get(i).copied().flatten() else {
                continue;
            };
            let x = LEFT + step * i as f64 + step * 0.1 + bar * j as f64;
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{c}\" \
                 data-series=\"{n}\" data-label=\"{l}\" data-value=\"{v}\"><title>{n} {l}: {v}</title></rect>",
                top = y(v),
                w = (bar - 1.0).max(1.0),
                h = (H - BOTTOM - y(v)).max(0.0),
                c = s.color,
                n = esc(&s.name),
                l = esc(l),
                v = num(v),
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Lines over `lo..=hi`, one point per label with a value, broken where there is none.
pub(super) fn lines(title: &str, labels: &[String], series: &[Series], lo: f64, hi: f64) -> String {
    let y = |v: f64| TOP + (H - BOTTOM - TOP) * (hi - v.clamp(lo, hi)) / (hi - lo);
    let mut out = open(title, series);
    axes(&mut out, labels, lo, hi, &y);
    let step = (W - RIGHT - LEFT) / labels.len().max(1) as f64;
    for s in series {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate() {
            let x = LEFT + step * (i as f64 + 0.5);
            match v {
                Some(v) => {
                    let _ = write!(
                        path,
                        "{}{x:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        y(*v)
                    );
                    let _ = write!(
                        out,
                        "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\" data-series=\"{n}\" \
                         data-label=\"{l}\" data-value=\"{v}\"><title>{n} {l}: {v}</title></circle>",
                        y(*v),
                        c = s.color,
                        n = esc(&s.name),
                        l = esc(&labels[i]),
                        v = num(*v),
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = write!(
                out,
                "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
                path.trim_end(),
                s.color
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bar_and_point_carries_its_number() {
        let labels = vec!["2027-03".to_string(), "2027-04".to_string()];
        let s = |name: &str, values: Vec<Option<f64>>| Series {
            name: name.into(),
            color: COLORS[0],
            values,
        };
        let svg = bars("sent", &labels, &[s("sent", vec![Some(4.0), Some(0.0)])]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("data-series=\"sent\" data-label=\"2027-03\" data-value=\"4\""));
        assert!(svg.contains("data-label=\"2027-04\" data-value=\"0\""));
        let svg = lines(
            "NPS",
            &labels,
            &[s("a<b", vec![None, Some(-12.5)])],
            -100.0,
            100.0,
        );
        assert!(svg.contains("data-series=\"a&lt;b\" data-label=\"2027-04\" data-value=\"-12.5\""));
        assert!(
            !svg.contains("data-label=\"2027-03\" data-value"),
            "no point without a value"
        );
        // All-zero bars still draw (no division by zero).
        assert!(!bars("x", &labels, &[s("x", vec![Some(0.0), None])]).contains("NaN"));
    }
}
