//! The table's charts, as SVG text (cargo feature `cli`: plotters). Each public function
//! takes the [`Table`] and returns a whole SVG document; a drawing error gives an SVG
//! that says so, never a panic. [`Table::to_svg`] stacks the three.
//!
//! - [`latency_svg`]: round-trip p50 per method, same cpu (blue) and cpu0 <-> cpu1
//!   (red) side by side on a log scale, every method labelled under its pair, each bar
//!   with a black tick at the floor its ratio is to (the method's own, else shm-futex).
//! - [`throughput_svg`]: one-way throughput per method, sender on cpu0 and receiver on
//!   cpu1, at the headline size.
//! - [`by_size_svg`]: p50 by message size (64 B to 1 MiB, log-log), one line per method
//!   labelled at its end, same cpu solid and cross cpu dashed.
//!
//! Legends sit in a strip above the plot, never over the bars.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{P50P99, Row, Table};
use crate::measure::Pin;

/// A drawing error, as text.
type Drawn<T = ()> = std::result::Result<T, String>;

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;

const SAME: RGBColor = RGBColor(40, 90, 200);
const CROSS: RGBColor = RGBColor(210, 50, 40);
const FONT: &str = "sans-serif";

/// Renders `draw` on a white `w` x `h` SVG; an error becomes the SVG's only text.
fn render(w: u32, h: u32, draw: impl FnOnce(&Area<'_>) -> Drawn) -> String {
    let mut svg = String::new();
    let err = {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let r = root
            .fill(&WHITE)
            .map_err(text)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(text));
        r.err()
    };
    match err {
        None => svg,
        Some(e) => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"60\">\
             <text x=\"10\" y=\"30\">chart not drawn: {}</text></svg>",
            e.replace('&', "&amp;").replace('<', "&lt;")
        ),
    }
}

/// A legend strip: coloured swatches and their names, left to right.
fn legend(area: &Area<'_>, items: &[(RGBColor, &str, bool)]) -> Drawn {
    let mut x = 60;
    for &(color, name, dashed) in items {
        if dashed {
            for k in 0..3 {
                area.draw(&PathElement::new(
                    vec![(x + k * 7, 12), (x + k * 7 + 4, 12)],
                    color.stroke_width(2),
                ))
                .map_err(text)?;
            }
        } else {
            area.draw(&Rectangle::new([(x, 6), (x + 18, 18)], color.filled()))
                .map_err(text)?;
        }
        area.draw(&Text::new(name.to_string(), (x + 24, 6), (FONT, 13)))
            .map_err(text)?;
        x += 30 + 8 * name.len() as i32;
    }
    Ok(())
}

/// Ticks of a log axis from `lo` to `hi`: 1, 2 and 5 of each decade over at most four
/// decades, 1 and 3 over more, so that a bar of 60 µs reads against 50, not only 10.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let steps: &[f64] = if hi / lo <= 1e4 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0, 3.0]
    };
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    (first..=last)
        .flat_map(|e| steps.iter().map(move |&m| m * 10f64.powi(e)))
        .filter(|&v| v >= lo * 0.999 && v <= hi * 1.001)
        .collect()
}

/// A tick's number: at most three significant digits, no trailing zeros ("0.05", "2",
/// "500").
fn tick_label(y: f64) -> String {
    if y >= 1.0 {
        format!("{y:.0}")
    } else {
        let s = format!("{y:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// "no data" under a slot that has no bar (a method that carries no bytes, or a
/// measurement that did not run), so that a missing bar is not read as a tiny one.
fn no_data<Y: plotters::coord::ranged1d::Ranged<ValueType = f64>>(
    c: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    x: f64,
    bottom: f64,
) -> Drawn {
    let area = c.plotting_area();
    let (ox, oy) = area.get_base_pixel();
    let (px, py) = c.backend_coord(&(x, bottom));
    area.strip_coord_spec()
        .draw(&Text::new(
            "no data",
            (px - ox - 8, py - oy - 16),
            (FONT, 12)
                .into_font()
                .transform(FontTransform::Rotate270)
                .color(&RGBColor(80, 80, 80)),
        ))
        .map_err(text)
}

/// The p50 in µs, or 0.
fn us(p: Option<P50P99>) -> f64 {
    p.map_or(0.0, |p| p.p50 as f64 / 1000.0)
}

/// Round-trip p50 per method, both pinnings, with each bar's floor (see the module
/// documentation), as SVG.
pub fn latency_svg(t: &Table) -> String {
    let rows = &t.rows;
    let w = (140 + 70 * rows.len() as u32).max(600);
    render(w, 520, |root| {
        let (strip, plot) = root.split_vertically(28);
        legend(
            &strip,
            &[
                (SAME, "same cpu", false),
                (CROSS, "cpu0 <-> cpu1", false),
                (BLACK, "tick: the row's floor", false),
            ],
        )?;
        let bars: Vec<[(f64, f64); 2]> = rows
            .iter()
            .map(|r| {
                let [fs, fc] = t.floor_of(r);
                [
                    (us(r.latency_ns.same_cpu), us(fs.0)),
                    (us(r.latency_ns.cross_cpu), us(fc.0)),
                ]
            })
            .collect();
        let top = bars
            .iter()
            .flatten()
            .map(|x| x.0.max(x.1))
            .fold(1.0_f64, f64::max)
            * 1.5;
        let mut c = ChartBuilder::on(&plot)
            .caption("Round trip p50, 64 B (µs, log)", (FONT, 18))
            .margin(10)
            .x_label_area_size(100)
            .y_label_area_size(60)
            .build_cartesian_2d(
                0f64..rows.len().max(1) as f64,
                (0.05..top)
                    .log_scale()
                    .with_key_points(log_ticks(0.05, top)),
            )
            .map_err(text)?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("µs")
            .y_label_formatter(&|y| tick_label(*y))
            .draw()
            .map_err(text)?;
        for (i, pair) in bars.iter().enumerate() {
            for (k, &(v, floor)) in pair.iter().enumerate() {
                let x0 = i as f64 + 0.1 + 0.4 * k as f64;
                let color = if k == 0 { SAME } else { CROSS };
                if v > 0.0 {
                    c.draw_series([Rectangle::new([(x0, 0.05), (x0 + 0.38, v)], color.filled())])
                        .map_err(text)?;
                } else {
                    no_data(&c, x0 + 0.19, 0.05)?;
                }
                if floor > 0.0 {
                    c.draw_series([PathElement::new(
                        vec![(x0 - 0.02, floor), (x0 + 0.4, floor)],
                        BLACK.stroke_width(3),
                    )])
                    .map_err(text)?;
                }
            }
        }
        method_labels(&c, rows, 0.05)
    })
}

/// Each method's name under its slot, turned 90 degrees (all of them, whatever their
/// number).
fn method_labels<Y: plotters::coord::ranged1d::Ranged<ValueType = f64>>(
    c: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    rows: &[Row],
    bottom: f64,
) -> Drawn {
    let style = (FONT, 13)
        .into_font()
        .transform(FontTransform::Rotate90)
        .color(&BLACK);
    let area = c.plotting_area();
    let (ox, oy) = area.get_base_pixel();
    for (i, r) in rows.iter().enumerate() {
        // backend_coord is in the whole drawing's pixels; the area draws from its own.
        let (x, y) = c.backend_coord(&(i as f64 + 0.5, bottom));
        area.strip_coord_spec()
            .draw(&Text::new(
                r.method.clone(),
                (x - ox + 7, y - oy + 8),
                style.clone(),
            ))
            .map_err(text)?;
    }
    Ok(())
}

/// One-way throughput per method (sender on cpu0, receiver on cpu1), as SVG.
pub fn throughput_svg(t: &Table) -> String {
    let rows = &t.rows;
    let w = (140 + 70 * rows.len() as u32).max(600);
    render(w, 500, |root| {
        let thr: Vec<f64> = rows
            .iter()
            .map(|r| r.throughput_bytes_per_s.unwrap_or(0.0) / 1e6)
            .collect();
        let top = thr.iter().copied().fold(1.0_f64, f64::max) * 1.5;
        let mut c = ChartBuilder::on(root)
            .caption(
                "One-way throughput, sender cpu0 -> receiver cpu1 (MB/s, log; 64 KiB or largest)",
                (FONT, 16),
            )
            .margin(10)
            .x_label_area_size(100)
            .y_label_area_size(60)
            .build_cartesian_2d(
                0f64..rows.len().max(1) as f64,
                (0.01..top)
                    .log_scale()
                    .with_key_points(log_ticks(0.01, top)),
            )
            .map_err(text)?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("MB/s")
            .y_label_formatter(&|y| tick_label(*y))
            .draw()
            .map_err(text)?;
        c.draw_series(
            thr.iter()
                .enumerate()
                .filter(|x| *x.1 > 0.0)
                .map(|(i, &v)| {
                    Rectangle::new(
                        [(i as f64 + 0.2, 0.01), (i as f64 + 0.8, v)],
                        RGBColor(60, 150, 80).filled(),
                    )
                }),
        )
        .map_err(text)?;
        for (i, _) in thr.iter().enumerate().filter(|x| *x.1 <= 0.0) {
            no_data(&c, i as f64 + 0.5, 0.01)?;
        }
        method_labels(&c, rows, 0.01)
    })
}

/// p50 by message size per method (log-log), same cpu solid and cross cpu dashed, each
/// line named at its right end, as SVG.
pub fn by_size_svg(t: &Table) -> String {
    render(1100, 620, |root| {
        let (strip, plot) = root.split_vertically(28);
        legend(
            &strip,
            &[
                (BLACK, "same cpu: solid", false),
                (BLACK, "cpu0 <-> cpu1: dashed", true),
            ],
        )?;
        let series = size_series(&t.rows);
        let top = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(1.0_f64, f64::max)
            * 2.0;
        let mut c = ChartBuilder::on(&plot)
            .caption("Round trip p50 by message size (log-log)", (FONT, 18))
            .margin(10)
            .margin_right(140)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (48.0..1.5 * 1048576.0)
                    .log_scale()
                    // The sizes measured (64 B to 1 MiB by 4) as the ticks.
                    .with_key_points(super::sizes_by_4().iter().map(|&s| s as f64).collect()),
                (0.1..top).log_scale().with_key_points(log_ticks(0.1, top)),
            )
            .map_err(text)?;
        c.configure_mesh()
            .x_desc("message size (bytes)")
            .y_desc("µs")
            .x_label_formatter(&|x| super::bytes(*x))
            .y_label_formatter(&|y| tick_label(*y))
            .draw()
            .map_err(text)?;
        if series.is_empty() {
            let why = if t.quick {
                "not measured: a quick run (--quick) skips the sizes; `ipc-audit table` measures them"
            } else {
                "no size was measured"
            };
            let area = c.plotting_area();
            let (ox, oy) = area.get_base_pixel();
            let (x, y) = c.backend_coord(&(1024.0, 1.0));
            area.strip_coord_spec()
                .draw(&Text::new(why, (x - ox - 200, y - oy), (FONT, 15)))
                .map_err(text)?;
        }
        let mut ends = Vec::new();
        for s in &series {
            let color = COLORS[s.index % COLORS.len()];
            let style = color.stroke_width(2);
            if s.pin == Pin::Same {
                c.draw_series([PathElement::new(s.points.clone(), style)])
                    .map_err(text)?;
            } else {
                c.draw_series(
                    dashes(&s.points)
                        .into_iter()
                        .map(|d| PathElement::new(d, style)),
                )
                .map_err(text)?;
            }
            if let Some(&last) = s.points.last() {
                let (x, y) = c.backend_coord(&last);
                let pin = if s.pin == Pin::Same { "" } else { " (x)" };
                ends.push((x, y, format!("{}{pin}", s.method), color));
            }
        }
        end_labels(&c, ends)
    })
}

/// Dark, distinct line colours, one per method of the table (a method's two pinnings
/// share one); a 14th method would reuse the first.
const COLORS: [RGBColor; 13] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(90, 90, 90),
    RGBColor(23, 190, 207),
    RGBColor(120, 120, 20),
    RGBColor(20, 20, 120),
    RGBColor(0, 110, 100),
    RGBColor(200, 160, 0),
];

/// The lines' names at their right ends, pushed apart so that none covers another.
fn end_labels<X, Y>(
    c: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    mut ends: Vec<(i32, i32, String, RGBColor)>,
) -> Drawn
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    let area = c.plotting_area();
    let (ox, oy) = area.get_base_pixel();
    ends.sort_by_key(|e| (e.0, e.1));
    let mut placed: Vec<(i32, i32)> = Vec::new();
    for (x, y, name, color) in ends {
        let mut y = y - 7;
        while placed
            .iter()
            .any(|&(px, py)| (px - x).abs() < 120 && (py - y).abs() < 13)
        {
            y += 13;
        }
        placed.push((x, y));
        // A white backing, so that a name over other lines (a line that ends early)
        // stays legible.
        let w = 7 * name.chars().count() as i32;
        area.strip_coord_spec()
            .draw(&Rectangle::new(
                [(x - ox + 4, y - oy - 1), (x - ox + 8 + w, y - oy + 13)],
                WHITE.mix(0.85).filled(),
            ))
            .map_err(text)?;
        area.strip_coord_spec()
            .draw(&Text::new(
                name,
                (x - ox + 6, y - oy),
                (FONT, 12).into_font().color(&color),
            ))
            .map_err(text)?;
    }
    Ok(())
}

/// The dashes of a log-log polyline: each segment cut into 8 pieces (in log space),
/// every other one kept.
fn dashes(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let at = |a: (f64, f64), b: (f64, f64), f: f64| {
        (
            (a.0.ln() + (b.0.ln() - a.0.ln()) * f).exp(),
            (a.1.ln() + (b.1.ln() - a.1.ln()) * f).exp(),
        )
    };
    let mut out = Vec::new();
    for w in points.windows(2) {
        for k in (0..8).step_by(2) {
            out.push(vec![
                at(w[0], w[1], k as f64 / 8.0),
                at(w[0], w[1], (k + 1) as f64 / 8.0),
            ]);
        }
    }
    out
}

/// One line of [`by_size_svg`]: a method at one pinning, (size, µs) points.
struct SizeSeries {
    method: String,
    /// The method's place in the table (its colour).
    index: usize,
    pin: Pin,
    points: Vec<(f64, f64)>,
}

fn size_series(rows: &[Row]) -> Vec<SizeSeries> {
    let mut out = Vec::new();
    for (index, r) in rows.iter().enumerate() {
        for pin in [Pin::Same, Pin::Cross] {
            let points: Vec<(f64, f64)> = r
                .latency_by_size
                .iter()
                .filter(|l| l.pin == pin && l.stats.p50_ns > 0)
                .map(|l| (l.size as f64, l.stats.p50_ns as f64 / 1000.0))
                .collect();
            if !points.is_empty() {
                out.push(SizeSeries {
                    method: r.method.clone(),
                    index,
                    pin,
                    points,
                });
            }
        }
    }
    out
}

impl Table {
    /// The three charts of this module, one above the other, as one SVG document.
    ///
    /// # Errors
    /// None today (a drawing error is drawn as text); kept a `Result` for callers.
    pub fn to_svg(&self) -> Drawn<String> {
        let parts = [latency_svg(self), throughput_svg(self), by_size_svg(self)];
        let size = |s: &str, key: &str| -> u32 {
            s.split_once(&format!("{key}=\""))
                .and_then(|(_, rest)| rest.split('"').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let w = parts.iter().map(|p| size(p, "width")).max().unwrap_or(600);
        let mut y = 0;
        let mut body = String::new();
        for p in &parts {
            let inner = p.split_once('>').map_or(p.as_str(), |x| x.1);
            let inner = inner.rsplit_once("</svg>").map_or(inner, |x| x.0);
            body.push_str(&format!(
                "<svg x=\"0\" y=\"{y}\" width=\"{}\" height=\"{}\">{inner}</svg>\n",
                size(p, "width"),
                size(p, "height")
            ));
            y += size(p, "height");
        }
        Ok(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{y}\" \
             viewBox=\"0 0 {w} {y}\">\n<rect width=\"{w}\" height=\"{y}\" fill=\"white\"/>\n\
             {body}</svg>\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::TransportReport;
    use crate::measure::{Latency, Stats, WayBack};
    use crate::report::{Floors, LatencyNs, Machine};

    const METHODS: [&str; 9] = [
        "pipe",
        "fifo",
        "uds-stream",
        "uds-dgram",
        "tcp",
        "udp",
        "posix-mq",
        "sysv-mq",
        "shm",
    ];

    fn lat(pin: Pin, size: usize, ns: u64) -> Latency {
        Latency {
            transport: String::new(),
            pin,
            size,
            way_back: WayBack::SameLink,
            stats: Stats {
                p50_ns: ns,
                p99_ns: 2 * ns,
                max_ns: 3 * ns,
                mean_ns: ns as f64,
                round_trips: 10,
                buckets: Vec::new(),
            },
            cpu_ns_per_round_trip: 0.0,
            switches_per_round_trip: 0.0,
            allocs_per_msg: None,
            peer_allocs_per_msg: None,
        }
    }

    fn table() -> Table {
        let p = |ns| Some(P50P99 { p50: ns, p99: ns });
        let rows = METHODS
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                let t = crate::transport::by_name(m).expect(m);
                let mut r = Row::new(
                    t.as_ref(),
                    TransportReport {
                        name: m.into(),
                        properties: Vec::new(),
                    },
                );
                let ns = 1000 * (i as u64 + 2);
                r.latency_ns = LatencyNs {
                    same_cpu: p(ns),
                    cross_cpu: p(20 * ns),
                };
                r.own_floor = LatencyNs {
                    same_cpu: p(ns / 2),
                    cross_cpu: p(10 * ns),
                };
                r.own_floor_names = vec!["raw".into(), "raw".into()];
                r.throughput_bytes_per_s = Some(1e8 * (i + 1) as f64);
                r.latency_by_size = [64, 256, 1024]
                    .iter()
                    .flat_map(|&s| [lat(Pin::Same, s, ns), lat(Pin::Cross, s, 9 * ns)])
                    .collect();
                r
            })
            .collect();
        Table {
            floor: Floors::default(),
            rows,
            machine: Machine::here(),
            quick: true,
            seconds: 1.0,
        }
    }

    /// How many `<text>` elements hold exactly `s`.
    fn texts(svg: &str, s: &str) -> usize {
        svg.split("</text>")
            .filter(|chunk| chunk.rsplit_once('>').is_some_and(|(_, t)| t.trim() == s))
            .count()
    }

    #[test]
    fn every_method_is_labelled_in_every_chart() {
        let t = table();
        for (chart, svg) in [
            ("latency", latency_svg(&t)),
            ("throughput", throughput_svg(&t)),
        ] {
            for m in METHODS {
                assert_eq!(texts(&svg, m), 1, "{chart}: label of {m}");
            }
        }
        let by_size = by_size_svg(&t);
        for m in METHODS {
            assert_eq!(texts(&by_size, m), 1, "by size: same-cpu line of {m}");
            assert_eq!(
                texts(&by_size, &format!("{m} (x)")),
                1,
                "by size: cross {m}"
            );
        }
    }

    #[test]
    fn log_axes_read_1_2_5_and_a_missing_bar_says_no_data() {
        assert_eq!(
            log_ticks(0.05, 90.0),
            [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
        );
        // Over more than four decades: 1 and 3.
        assert_eq!(log_ticks(0.01, 400.0).len(), 10);
        for (v, s) in [
            (0.05, "0.05"),
            (0.2, "0.2"),
            (0.30000000000000004, "0.3"),
            (50.0, "50"),
        ] {
            assert_eq!(tick_label(v), s);
        }
        let mut t = table();
        let svg = latency_svg(&t);
        for label in ["0.05", "0.5", "2", "5", "20", "50"] {
            assert_eq!(texts(&svg, label), 1, "tick {label}");
        }
        assert_eq!(texts(&svg, "no data"), 0);
        t.rows[0].latency_ns.cross_cpu = None;
        t.rows[1].throughput_bytes_per_s = None;
        assert_eq!(texts(&latency_svg(&t), "no data"), 1);
        assert_eq!(texts(&throughput_svg(&t), "no data"), 1);
    }

    #[test]
    fn a_by_size_chart_without_sizes_says_why() {
        let mut t = table();
        for r in &mut t.rows {
            r.latency_by_size.clear();
        }
        assert!(by_size_svg(&t).contains("a quick run (--quick) skips the sizes"));
        t.quick = false;
        assert!(by_size_svg(&t).contains("no size was measured"));
        assert!(!by_size_svg(&table()).contains("not measured"));
    }

    #[test]
    fn floors_are_drawn_as_one_tick_per_bar() {
        let t = table();
        let svg = latency_svg(&t);
        // Two bars and two ticks per method (black, 3 px wide).
        let ticks = svg.matches("stroke-width=\"3\"").count();
        assert_eq!(ticks, 2 * METHODS.len(), "{svg}");
        let mut none = t.clone();
        for r in &mut none.rows {
            r.own_floor = LatencyNs::default();
        }
        // Without own floors and without a futex floor: no tick at all.
        assert_eq!(latency_svg(&none).matches("stroke-width=\"3\"").count(), 0);
    }

    /// (The chart tests' table serves the terminal table too.)
    #[test]
    fn the_text_table_fits_160_columns_and_detail_adds_the_long_cells() {
        let mut t = table();
        for r in &mut t.rows {
            r.security = "x".repeat(300);
        }
        let short = t.to_text(false);
        for l in short.lines() {
            assert!(
                l.chars().count() <= 160,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        assert!(!short.contains(&"x".repeat(300)));
        for m in METHODS {
            assert!(
                short.lines().any(|l| l.starts_with(&format!("{m} "))),
                "{m}"
            );
        }
        assert!(
            t.to_text(true)
                .contains(&format!("security: {}", "x".repeat(300)))
        );
    }

    #[test]
    fn the_whole_chart_is_one_svg_with_the_three_parts() {
        let svg = table().to_svg().unwrap();
        assert!(svg.starts_with("<svg xmlns"));
        assert_eq!(svg.matches("<svg").count(), 4, "one outer, three inner");
        assert!(svg.contains("by message size"));
    }
}
