//! The SVG plot (`--plot`): median GB/s against worker count, one polyline
//! per line — solid for mmrun, dashed for the per-worker references, dotted
//! and flat across the axis for the single-process ones.
//!
//! Written by hand (a fixed-size line chart needs no plotting crate): worker
//! counts are evenly spaced categories, the y axis starts at 0 and ends on a
//! 1-2-5 tick. Text is XML-escaped; the document has no prolog, so it starts
//! with `<svg`.

use std::fmt::Write;

use super::Exporter;
use crate::bench::{BenchReport, Line};
use crate::error::Result;
use indicatif::HumanBytes;

/// `--plot`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SvgExporter;

const WIDTH: f64 = 780.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 540.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 380.0;

/// Colours, one per series in order (Tableau 10).
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A 1-2-5 step giving about five ticks up to `max`.
fn tick_step(max: f64) -> f64 {
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

impl Exporter for SvgExporter {
    fn serialize(&self, r: &BenchReport) -> Result<Vec<u8>> {
        let mut xs: Vec<usize> = r
            .cells
            .iter()
            .filter(|c| c.line.per_workers())
            .map(|c| c.workers)
            .collect();
        xs.sort_unstable();
        xs.dedup();
        if xs.is_empty() {
            xs.push(1);
        }
        let x_of = |w: usize| -> f64 {
            let i = xs.iter().position(|&x| x == w).unwrap_or(0) as f64;
            if xs.len() == 1 {
                (LEFT + RIGHT) / 2.0
            } else {
                LEFT + 20.0 + i * (RIGHT - LEFT - 40.0) / (xs.len() - 1) as f64
            }
        };
        let max = r.cells.iter().map(|c| c.gbps).fold(0.0, f64::max);
        let step = tick_step(if max > 0.0 { max * 1.05 } else { 1.0 });
        let top = ((if max > 0.0 { max * 1.05 } else { 1.0 }) / step).ceil() * step;
        let y_of = |g: f64| BOTTOM - g / top * (BOTTOM - TOP);
        let decimals = (-step.log10().floor()).max(0.0) as usize;

        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let e = &r.environment;
        let title = format!(
            "mmrun bench: {} per sample, {} on {}",
            HumanBytes(r.params.bytes),
            e.fs.fs_type,
            e.fs.dir.display()
        );
        let _ = writeln!(out, "<title>{}</title>", escape(&title));
        let _ = writeln!(
            out,
            r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="28" font-size="15" font-weight="bold">{}</text>"#,
            escape(&title)
        );
        let _ = writeln!(
            out,
            r##"<text x="{LEFT}" y="46" fill="#555">{}</text>"##,
            escape(&format!(
                "{}, {} CPUs, Linux {}, THP {}, cache {}, mmrun {} ({})",
                e.cpu, e.nproc, e.kernel, e.thp, e.cache.mode, e.mmrun_version, e.build_profile
            ))
        );
        // Grid and y ticks.
        let mut g = 0.0;
        while g <= top + step / 2.0 {
            let y = y_of(g);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#ddd"/>"##
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{g:.decimals$}</text>"#,
                LEFT - 6.0,
                y + 4.0
            );
            g += step;
        }
        for &w in &xs {
            let x = x_of(w);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{:.1}" stroke="#333"/>"##,
                BOTTOM + 5.0
            );
            let _ = writeln!(
                out,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{w}</text>"#,
                BOTTOM + 20.0
            );
        }
        let _ = writeln!(
            out,
            r##"<polyline points="{LEFT},{TOP} {LEFT},{BOTTOM} {RIGHT},{BOTTOM}" fill="none" stroke="#333" class="axis"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">workers</text>"#,
            (LEFT + RIGHT) / 2.0,
            BOTTOM + 45.0
        );
        let _ = writeln!(
            out,
            r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">GB/s (median)</text>"#,
            (TOP + BOTTOM) / 2.0,
            (TOP + BOTTOM) / 2.0
        );

        // One series per line, in the order cells first appear.
        let mut series: Vec<Line> = Vec::new();
        for c in &r.cells {
            if !series.contains(&c.line) {
                series.push(c.line);
            }
        }
        for (i, &line) in series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let mut pts: Vec<(f64, f64)> = r
                .cells
                .iter()
                .filter(|c| c.line == line)
                .map(|c| (x_of(c.workers), y_of(c.gbps)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (dash, width) = if !line.per_workers() {
                // One process: a flat line across the whole axis.
                let y = pts.first().map_or(BOTTOM, |p| p.1);
                pts = vec![(LEFT, y), (RIGHT, y)];
                (r#" stroke-dasharray="2 4""#, 1.5)
            } else if line.is_reference() {
                (r#" stroke-dasharray="6 4""#, 1.5)
            } else {
                ("", 2.5)
            };
            let points: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                out,
                r#"<polyline class="series" points="{}" fill="none" stroke="{colour}" stroke-width="{width}"{dash}><title>{}</title></polyline>"#,
                points.join(" "),
                escape(&line.label())
            );
            if line.per_workers() {
                for (x, y) in &pts {
                    let _ = writeln!(
                        out,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
                    );
                }
            }
            let ly = TOP + 10.0 + i as f64 * 22.0;
            let _ = writeln!(
                out,
                r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="{width}"{dash}/>"#,
                RIGHT + 20.0,
                RIGHT + 50.0
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                RIGHT + 58.0,
                ly + 4.0,
                escape(&line.label())
            );
        }
        out.push_str("</svg>\n");
        Ok(out.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::tests::fixed_report;

    /// Checks that tags nest: every open tag is closed in order, and
    /// attribute values and text hold no raw `<` or `&`.
    fn well_formed(svg: &str) -> std::result::Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            if text.contains('>')
                || text
                    .replace("&amp;", "")
                    .replace("&lt;", "")
                    .replace("&gt;", "")
                    .replace("&quot;", "")
                    .contains('&')
            {
                return Err(format!("bad text {text:?}"));
            }
            let end = rest[start..].find('>').ok_or("unclosed tag")? + start;
            let tag = &rest[start + 1..end];
            if tag.contains('<') {
                return Err(format!("bad tag {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().ok_or("empty tag")?;
                stack.push(name.to_string());
            }
            rest = &rest[end + 1..];
        }
        if stack.is_empty() && rest.trim().is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    #[test]
    fn svg_has_one_polyline_per_series_and_nests() {
        let mut report = fixed_report();
        report.environment.fs.dir = "/scratch/a<b>&c".into();
        let svg = String::from_utf8(SvgExporter.serialize(&report).unwrap()).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        well_formed(&svg).unwrap();
        // Five series (anon, mmap writer, fill-value, pwrite, memset), plus the axes.
        assert_eq!(svg.matches(r#"<polyline class="series""#).count(), 5);
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert!(svg.contains("/scratch/a&lt;b&gt;&amp;c"));
        // fill-value: 0.839 GB/s at 1 worker, 1.291 at 2; the axis runs to
        // 10 in ticks of 2 (max 8.389 * 1.05 = 8.81).
        assert!(svg.contains(r##"points="90.0,353.2 520.0,338.7" fill="none" stroke="#e15759" stroke-width="2.5"><title>mmrun fill-value</title>"##), "{svg}");
        // pwrite is flat across the axis, dotted.
        assert!(svg.contains(r#"points="70.0,363.2 540.0,363.2""#));
        assert!(svg.contains(">10</text>"));
    }

    #[test]
    fn ticks_are_one_two_five() {
        assert_eq!(tick_step(10.0), 2.0);
        assert_eq!(tick_step(4.0), 1.0);
        assert_eq!(tick_step(0.9), 0.2);
        assert_eq!(tick_step(22.0), 5.0);
        assert_eq!(tick_step(60.0), 20.0);
    }

    #[test]
    fn the_checker_catches_bad_nesting() {
        assert!(well_formed("<svg><g></svg></g>").is_err());
        assert!(well_formed("<svg><text>a < b</text></svg>").is_err());
        assert!(well_formed("<svg><text>a & b</text></svg>").is_err());
        assert!(well_formed("<svg><g/><text>x</text></svg>").is_ok());
    }
}
