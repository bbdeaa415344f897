//! The table's chart: round-trip p50 per method (same cpu and cross cpu, log scale) and
//! one-way throughput per method, as SVG (cargo feature `cli`: plotters).

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{P50P99, Row, Table};

/// A drawing error, as text.
type Drawn<T = ()> = std::result::Result<T, String>;

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A chart of methods along x (one unit each) over a log-scale y axis.
type MethodChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<RangedCoordf64, plotters::coord::combinators::LogCoord<f64>>,
>;

impl Table {
    /// A chart of latency (p50, both pinnings, log scale) and throughput per method, as
    /// SVG.
    ///
    /// # Errors
    /// A drawing error, as text.
    pub fn to_svg(&self) -> Drawn<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (1200, 560)).into_drawing_area();
            root.fill(&WHITE).map_err(text)?;
            let (left, right) = root.split_horizontally(600);
            latency_chart(&left, &self.rows)?;
            throughput_chart(&right, &self.rows)?;
            root.present().map_err(text)?;
        }
        Ok(svg)
    }
}

/// A chart on `area` with one slot per row along x, labelled with the method names,
/// and a log y axis from `bottom` to `top`.
fn method_axis<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    rows: &[Row],
    caption: &str,
    (bottom, top): (f64, f64),
) -> Drawn<MethodChart<'a, 'b>> {
    let n = rows.len().max(1);
    let names: Vec<String> = rows.iter().map(|r| r.method.clone()).collect();
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(90)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n as f64, (bottom..top).log_scale())
        .map_err(text)?;
    c.configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            names
                .get(x.floor() as usize)
                .filter(|_| x.fract() == 0.0)
                .cloned()
                .unwrap_or_default()
        })
        .x_label_style(
            ("sans-serif", 11)
                .into_text_style(area)
                .transform(plotters::style::FontTransform::Rotate90),
        )
        .draw()
        .map_err(text)?;
    Ok(c)
}

/// Round-trip p50 in µs, same cpu (blue) and cpu0 <-> cpu1 (red), log scale.
fn latency_chart(area: &DrawingArea<SVGBackend<'_>, Shift>, rows: &[Row]) -> Drawn {
    let lat: Vec<(usize, f64, f64)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let g = |p: Option<P50P99>| p.map_or(0.0, |p| p.p50 as f64 / 1000.0);
            (i, g(r.latency_ns.same_cpu), g(r.latency_ns.cross_cpu))
        })
        .collect();
    let top = lat.iter().map(|x| x.1.max(x.2)).fold(1.0_f64, f64::max) * 2.0;
    let mut c = method_axis(area, rows, "Round trip p50 (µs, log)", (0.01, top))?;
    let bars = |series: usize, color: RGBColor| {
        lat.iter()
            .filter_map(move |&(i, s, x)| {
                let v = if series == 0 { s } else { x };
                (v > 0.0).then(|| {
                    let x0 = i as f64 + 0.1 + 0.4 * series as f64;
                    Rectangle::new([(x0, 0.01), (x0 + 0.38, v)], color.filled())
                })
            })
            .collect::<Vec<_>>()
    };
    c.draw_series(bars(0, BLUE))
        .map_err(text)?
        .label("same cpu")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.filled()));
    c.draw_series(bars(1, RED))
        .map_err(text)?
        .label("cpu0 <-> cpu1")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RED.filled()));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(text)
}

/// One-way throughput in MB/s (64 KiB messages or the largest), log scale.
fn throughput_chart(area: &DrawingArea<SVGBackend<'_>, Shift>, rows: &[Row]) -> Drawn {
    let thr: Vec<(usize, f64)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.throughput_bytes_per_s.unwrap_or(0.0) / 1e6))
        .collect();
    let top = thr.iter().map(|x| x.1).fold(1.0_f64, f64::max) * 2.0;
    let caption = "Throughput (MB/s, log; 64 KiB or largest)";
    let mut c = method_axis(area, rows, caption, (0.001, top))?;
    c.draw_series(thr.iter().filter(|x| x.1 > 0.0).map(|&(i, v)| {
        Rectangle::new(
            [(i as f64 + 0.15, 0.001), (i as f64 + 0.85, v)],
            GREEN.filled(),
        )
    }))
    .map_err(text)?;
    Ok(())
}
