//! The report page: one self-contained HTML file (inline CSS and SVG, no script, no
//! network) with the machine, the comparison table (every cell a link to its evidence),
//! the evidence, the charts and the audit matrix. It renders a [`Table`] and nothing
//! else: `ipc-audit report` writes the same table as JSON beside it.

use std::fmt::Write as _;

use super::{Row, Table, bytes, duration_ns, rate};
use crate::audit::{PropertyResult, Verdict};
use crate::measure::{Floor, FloorKind, Latency, Pin, Stats, Throughput};

/// The columns of the comparison table and the id suffix of each one's evidence.
const COLUMNS: [(&str, &str); 7] = [
    ("Method", "method"),
    ("Supporting OS", "os"),
    ("Security", "security"),
    ("Latency p50 same cpu / cross cpu", "latency"),
    ("Complexity", "complexity"),
    ("Efficiency", "efficiency"),
    ("Usability", "usability"),
];

/// The audit properties behind the usability cell's marks.
const USABILITY_PROPERTIES: [&str; 3] = ["boundaries", "ordering", "oversize"];

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0 2em 4em;color:#222}
h1{margin:.6em 0 .2em}h2{margin-top:2em;border-bottom:2px solid #ccd}h3{margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccd;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#eef}td a{color:inherit;text-decoration:none;border-bottom:1px dotted #88a}
#table td{max-width:24em}code{background:#f4f4f8;padding:0 3px}
.pass{background:#dfd}.fail{background:#fcc}.not-applicable{background:#eee}.not-run{background:#ffe7b3}
.matrix td{text-align:center;white-space:nowrap;font-size:90%}.err{color:#a00}
:target{outline:3px solid #f90;outline-offset:2px}
section.ev{border-left:4px solid #ccd;padding-left:1em;margin:1em 0}
.ev>div{margin:.6em 0}svg{max-width:100%;height:auto}.small{color:#666;font-size:90%}";

/// `s` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as a fragment of an element id: lowercase letters, digits and `-`.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The id of `row`'s evidence for the column with id suffix `col`.
fn evidence_id(method: &str, col: &str) -> String {
    format!("ev-{}-{col}", slug(method))
}

/// The id of one audit result's detail row.
fn audit_id(method: &str, property: &str) -> String {
    format!("audit-{}-{}", slug(method), slug(property))
}

/// The id of one floor measurement.
fn floor_id(kind: FloorKind, pin: Pin) -> String {
    format!("floor-{}-{}", kind.name(), pin.name())
}

/// The CSS class of a verdict (also its label's style).
fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::NotApplicable => "not-applicable",
        Verdict::NotRun => "not-run",
    }
}

/// A verdict's short label in the audit matrix (the full word is in its detail row).
fn matrix_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::NotApplicable => "n/a",
        Verdict::NotRun => "not run",
    }
}

/// How the run's audit was configured, as `ipc-audit audit` flags.
fn cases_flag(t: &Table) -> String {
    let plan = if t.quick {
        super::Plan::quick()
    } else {
        super::Plan::full()
    };
    plan.audit_cases
        .map(|c| format!(" --cases {c}"))
        .unwrap_or_default()
}

impl Table {
    /// The report page: a self-contained HTML document (inline CSS and SVG, no script,
    /// nothing fetched) of this table, with the evidence behind every cell, the charts
    /// and the audit matrix. Every link in it points at an element of the page, except
    /// `table.json`, the same table as [`Table::to_json`], which `ipc-audit report`
    /// writes beside it.
    pub fn to_html(&self) -> String {
        let mut out = String::with_capacity(256 * 1024);
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        out.push_str("<title>ipc-audit: Linux IPC methods, measured and audited</title><style>");
        out.push_str(STYLE);
        out.push_str("</style></head><body>\n");
        self.html_head(&mut out);
        self.html_table(&mut out);
        self.html_charts(&mut out);
        self.html_matrix(&mut out);
        self.html_evidence(&mut out);
        self.html_audit_details(&mut out);
        self.html_floors(&mut out);
        out.push_str("</body></html>\n");
        out
    }

    /// The title, the machine, how it was measured and the command that reproduces it.
    fn html_head(&self, out: &mut String) {
        let m = &self.machine;
        let names: Vec<&str> = self.rows.iter().map(|r| r.method.as_str()).collect();
        let _ = write!(
            out,
            "<h1>Linux IPC methods, measured and audited</h1>\
             <p id=\"machine\">Measured on {} cpus ({}), Linux {}; a {} run of {} methods \
             in {:.1} s. The same data as JSON: <a href=\"table.json\">table.json</a>.</p>\
             <p>Reproduce it: <code>ipc-audit report{} {} --out DIR</code>. Medians drift \
             between runs on a shared machine: compare within one run, with the \
             <a href=\"#floors\">floors</a> measured in it.</p>\
             <ul class=\"small\"><li>Latency: round trips between two processes, both pinned \
             on one cpu (same cpu) or on cpu0 and cpu1 (cross cpu); p50 and p99 from a \
             histogram; the ratio is to the method's own floor of the same pinning (the \
             shm-futex floor where it has none).</li>\
             <li>Efficiency: one-way throughput at 64 KiB (or the largest message the method \
             takes), CPU time per message of both processes, heap allocations per message.</li>\
             <li>Complexity: descriptors made by <code>open</code>, a name both sides must \
             agree on, context switches per round trip.</li>\
             <li>Security and usability: the audit, with the peer in a separate process; every \
             verdict links to what was observed.</li></ul>",
            m.cpus,
            escape(&m.cpu_model),
            escape(&m.kernel),
            if self.quick { "quick" } else { "full" },
            self.rows.len(),
            self.seconds,
            if self.quick { " --quick" } else { "" },
            escape(&names.join(" ")),
        );
    }

    /// The comparison table, each cell a link to its evidence.
    fn html_table(&self, out: &mut String) {
        out.push_str("<h2>The comparison table</h2><table id=\"table\"><thead><tr>");
        for (head, _) in COLUMNS {
            let _ = write!(out, "<th>{}</th>", escape(head));
        }
        out.push_str("</tr></thead><tbody>\n");
        for r in &self.rows {
            let mut efficiency = Self::efficiency_cell(r);
            if !r.errors.is_empty() {
                let _ = write!(efficiency, " (errors: {})", r.errors.join("; "));
            }
            let cells = [
                r.method.clone(),
                r.supporting_os.clone(),
                r.security.clone(),
                self.latency_cell(r),
                r.complexity.clone(),
                efficiency,
                r.usability.clone(),
            ];
            out.push_str("<tr>");
            for ((_, col), text) in COLUMNS.iter().zip(cells) {
                let _ = write!(
                    out,
                    "<td><a href=\"#{}\">{}</a></td>",
                    evidence_id(&r.method, col),
                    escape(&text)
                );
            }
            out.push_str("</tr>\n");
        }
        out.push_str(
            "</tbody></table>\n<p class=\"small\">Every cell links to its evidence.</p>\n",
        );
    }

    /// The latency and throughput charts ([`Table::to_svg`]), inline.
    fn html_charts(&self, out: &mut String) {
        out.push_str("<h2 id=\"charts\">Charts</h2>\n");
        match self.to_svg() {
            Ok(svg) => {
                let start = svg.find("<svg").unwrap_or(0);
                out.push_str(&svg[start..]);
            }
            Err(e) => {
                let _ = write!(out, "<p class=\"err\">chart not drawn: {}</p>", escape(&e));
            }
        }
        out.push('\n');
    }

    /// Property x transport (one column per transport, so that the page stays narrow),
    /// each verdict explained on hover and linked to its detail row.
    fn html_matrix(&self, out: &mut String) {
        let mut props: Vec<&str> = Vec::new();
        for p in self.rows.iter().flat_map(|r| &r.audit.properties) {
            if !props.contains(&p.property.as_str()) {
                props.push(&p.property);
            }
        }
        out.push_str(
            "<h2 id=\"audit\">The audit matrix</h2><p class=\"small\">Hover over a \
            verdict for what was declared and observed; click it for the detail row. \
            <span class=\"pass\">pass</span>: what was declared was observed; \
            <span class=\"fail\">FAIL</span>: a declared guarantee was violated; \
            <span class=\"not-applicable\">n/a</span> (not-applicable): the method has no such \
            feature, nothing to check; <span class=\"not-run\">not run</span>: the check \
            could not run here (never a pass; the cause is in its row).</p>\
            <table class=\"matrix\"><thead><tr><th>Property</th>",
        );
        for r in &self.rows {
            let _ = write!(
                out,
                "<th><a href=\"#{}\">{}</a></th>",
                evidence_id(&r.method, "method"),
                escape(&r.method)
            );
        }
        out.push_str("</tr></thead><tbody>\n");
        for p in &props {
            let _ = write!(out, "<tr><th>{}</th>", escape(p));
            for r in &self.rows {
                match r.audit.properties.iter().find(|x| x.property == *p) {
                    Some(x) => matrix_cell(out, &r.method, x),
                    None => out.push_str("<td title=\"not in this transport's audit\">–</td>"),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n");
    }

    /// Every audit result in full, one row each, with the command that reruns it.
    fn html_audit_details(&self, out: &mut String) {
        out.push_str(
            "<h2 id=\"audit-details\">Audit results</h2><table><thead><tr>\
            <th>Method</th><th>Property</th><th>Verdict</th><th>Declared</th><th>Observed</th>\
            <th>Minimal case, cases run or reason</th><th>Rerun it</th></tr></thead><tbody>\n",
        );
        let cases = cases_flag(self);
        for r in &self.rows {
            for p in &r.audit.properties {
                let _ = writeln!(
                    out,
                    "<tr id=\"{}\"><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td>\
                     <td>{}</td><td>{}</td><td><code>ipc-audit audit {} --property {}{}</code></td></tr>",
                    audit_id(&r.method, &p.property),
                    escape(&r.method),
                    escape(&p.property),
                    verdict_class(p.verdict),
                    p.verdict.as_str(),
                    escape(&p.declared),
                    escape(&p.observed),
                    escape(&p.detail),
                    escape(&r.method),
                    escape(&p.property),
                    cases
                );
            }
        }
        out.push_str("</tbody></table>\n");
    }

    /// The floors of this run, with their histograms.
    fn html_floors(&self, out: &mut String) {
        out.push_str(
            "<h2 id=\"floors\">Floors of this run</h2><p class=\"small\">Two \
            processes hand a word back and forth in shared memory: spinning on a cache line \
            (shm-spin) or sleeping on a futex (shm-futex). The latency ratios are to \
            shm-futex of the same pinning.</p>\n",
        );
        for f in &self.floor.details {
            let _ = write!(
                out,
                "<div id=\"{}\"><h3>{} {} cpu</h3>",
                floor_id(f.kind, f.pin),
                f.kind.name(),
                f.pin.name()
            );
            stats_table(out, &f.stats);
            histogram_svg(out, &f.stats);
            out.push_str("</div>\n");
        }
        for e in &self.floor.errors {
            let _ = writeln!(
                out,
                "<p class=\"err\">floor not measured: {}</p>",
                escape(e)
            );
        }
    }

    /// One section per method, one block per column.
    fn html_evidence(&self, out: &mut String) {
        out.push_str("<h2 id=\"evidence\">The evidence behind every cell</h2>\n");
        let cases = cases_flag(self);
        for r in &self.rows {
            let m = escape(&r.method);
            let _ = write!(
                out,
                "<section class=\"ev\" id=\"{}\"><h3>{m}</h3><p>Its row alone: \
                 <code>ipc-audit report{} {m} --out DIR</code>; its whole audit: \
                 <code>ipc-audit audit {m}{cases}</code></p>",
                evidence_id(&r.method, "method"),
                if self.quick { " --quick" } else { "" }
            );
            let _ = write!(
                out,
                "<div id=\"{}\"><b>Supporting OS</b>: {}: declared by the transport; CI \
                 compiles the library for FreeBSD and macOS. <code>ipc-audit list</code></div>",
                evidence_id(&r.method, "os"),
                escape(&r.supporting_os)
            );
            let security: Vec<&PropertyResult> = r
                .audit
                .properties
                .iter()
                .filter(|p| p.property.contains("access") || p.property.contains("permission"))
                .collect();
            audit_block(out, r, "security", "Security", &security, &cases);
            self.latency_block(out, r);
            complexity_block(out, r);
            efficiency_block(out, r);
            let usability: Vec<&PropertyResult> = r
                .audit
                .properties
                .iter()
                .filter(|p| USABILITY_PROPERTIES.contains(&p.property.as_str()))
                .collect();
            audit_block(out, r, "usability", "Usability", &usability, &cases);
            out.push_str("</section>\n");
        }
    }

    /// Each latency measurement of `r`, its histogram, and the floor it was compared with.
    fn latency_block(&self, out: &mut String, r: &Row) {
        let _ = write!(
            out,
            "<div id=\"{}\"><b>Latency</b>: {}",
            evidence_id(&r.method, "latency"),
            escape(&self.latency_cell(r))
        );
        for l in &r.latency {
            // The row's own method floor of this pinning, else the shm-futex floor.
            let floor = match r.own_floor_details.iter().find(|f| f.pin == l.pin) {
                Some(f) => Some((f, own_floor_id(&r.method, f))),
                None => self
                    .futex_floor_at(l.pin)
                    .map(|f| (f, floor_id(f.kind, f.pin))),
            };
            latency_one(out, l, floor);
        }
        for f in &r.own_floor_details {
            let _ = write!(
                out,
                "<div id=\"{}\"><h4>Its own floor: {}, {} cpu</h4>",
                own_floor_id(&r.method, f),
                f.kind.name(),
                f.pin.name()
            );
            stats_table(out, &f.stats);
            histogram_svg(out, &f.stats);
            out.push_str("</div>");
        }
        for e in r.errors.iter().filter(|e| e.starts_with("latency")) {
            let _ = write!(out, "<p class=\"err\">{}</p>", escape(e));
        }
        out.push_str("</div>");
    }

    /// The shm-futex floor of `pin` in this run.
    fn futex_floor_at(&self, pin: Pin) -> Option<&Floor> {
        self.floor
            .details
            .iter()
            .find(|f| f.kind == FloorKind::ShmFutex && f.pin == pin)
    }
}

/// One verdict of the audit matrix, explained on hover, linked to its detail row.
fn matrix_cell(out: &mut String, method: &str, x: &PropertyResult) {
    let _ = write!(
        out,
        "<td class=\"{}\"><a href=\"#{}\" title=\"declared: {}&#10;observed: {}&#10;{}\">{}</a></td>",
        verdict_class(x.verdict),
        audit_id(method, &x.property),
        escape(&x.declared),
        escape(&x.observed),
        escape(&x.detail),
        matrix_label(x.verdict)
    );
}

/// The id of a row's own floor measurement.
fn own_floor_id(method: &str, f: &Floor) -> String {
    format!("{method}-own-floor-{}-{}", f.kind.name(), f.pin.name())
}

/// One pinning's round trips: the numbers, the histogram, the floor (with the id of its
/// evidence) and the command.
fn latency_one(out: &mut String, l: &Latency, floor: Option<(&Floor, String)>) {
    let _ = write!(
        out,
        "<h4>{} cpu, {} B messages, answer on the {}</h4>",
        l.pin.name(),
        l.size,
        match l.way_back {
            crate::measure::WayBack::SameLink => "same link",
            crate::measure::WayBack::SecondLink => "second link",
        }
    );
    stats_table(out, &l.stats);
    let _ = write!(
        out,
        "<p>CPU {} per round trip (both processes), {:.2} context switches per round trip.</p>",
        duration_ns(l.cpu_ns_per_round_trip),
        l.switches_per_round_trip
    );
    histogram_svg(out, &l.stats);
    match floor {
        Some((f, id)) => {
            let ratio = if f.stats.p50_ns > 0 {
                format!("{:.2}x", l.stats.p50_ns as f64 / f.stats.p50_ns as f64)
            } else {
                "no ratio".into()
            };
            let _ = write!(
                out,
                "<p>Compared with the <a href=\"#{id}\">{} floor, {} cpu</a>: p50 {} \
                 (p99 {}); this p50 is {ratio} the floor's.</p>",
                f.kind.name(),
                f.pin.name(),
                duration_ns(f.stats.p50_ns as f64),
                duration_ns(f.stats.p99_ns as f64)
            );
        }
        None => out.push_str("<p>No floor of this pinning was measured: no ratio.</p>"),
    }
    let _ = write!(
        out,
        "<p>Rerun it: <code>ipc-audit bench {} --pin {} --size {} --count {}</code></p>",
        escape(&l.transport),
        l.pin.name(),
        l.size,
        l.stats.round_trips
    );
}

/// Percentiles of one set of round trips.
fn stats_table(out: &mut String, s: &Stats) {
    let _ = write!(
        out,
        "<table><tr><th>round trips</th><th>p50</th><th>p99</th><th>max</th><th>mean</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        s.round_trips,
        duration_ns(s.p50_ns as f64),
        duration_ns(s.p99_ns as f64),
        duration_ns(s.max_ns as f64),
        duration_ns(s.mean_ns)
    );
}

/// The histogram of `s` as a small inline SVG: one bar per bucket (doubling widths),
/// the share of round trips up to its bound.
fn histogram_svg(out: &mut String, s: &Stats) {
    if s.buckets.is_empty() {
        out.push_str("<p class=\"small\">No histogram in this data.</p>");
        return;
    }
    let total: u64 = s.buckets.iter().map(|b| b[1]).sum::<u64>().max(1);
    let (w, h, bar) = (40usize, 80.0f64, 34usize);
    let width = w * s.buckets.len() + 8;
    let _ = write!(
        out,
        "<svg class=\"hist\" width=\"{width}\" height=\"120\" viewBox=\"0 0 {width} 120\" \
         role=\"img\" aria-label=\"histogram of round trips\">"
    );
    for (i, b) in s.buckets.iter().enumerate() {
        let share = b[1] as f64 / total as f64;
        let bh = (share * h).max(if b[1] > 0 { 1.0 } else { 0.0 });
        let x = 4 + i * w;
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"{bar}\" height=\"{bh:.1}\" fill=\"#4a6fd8\">\
             <title>up to {}: {} round trips ({:.1}%)</title></rect>\
             <text x=\"{}\" y=\"112\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            10.0 + h - bh,
            duration_ns(b[0] as f64),
            b[1],
            share * 100.0,
            x + bar / 2,
            duration_ns(b[0] as f64).replace(' ', "")
        );
    }
    out.push_str("</svg>");
}

/// The audit results behind a cell, each linked to its detail row.
fn audit_block(
    out: &mut String,
    r: &Row,
    col: &str,
    title: &str,
    results: &[&PropertyResult],
    cases: &str,
) {
    let cell = if col == "security" {
        &r.security
    } else {
        &r.usability
    };
    let _ = write!(
        out,
        "<div id=\"{}\"><b>{title}</b>: {}",
        evidence_id(&r.method, col),
        escape(cell)
    );
    if results.is_empty() {
        out.push_str(
            "<p>No audit property behind this cell: it is what the transport declares, \
             as <code>ipc-audit list</code> prints it.</p>",
        );
    }
    for p in results {
        let _ = write!(
            out,
            "<p><a class=\"{}\" href=\"#{}\">{} {}</a>: declared <i>{}</i>; observed <i>{}</i>; \
             {}. Rerun it: <code>ipc-audit audit {} --property {}{cases}</code></p>",
            verdict_class(p.verdict),
            audit_id(&r.method, &p.property),
            escape(&p.property),
            p.verdict.as_str(),
            escape(&p.declared),
            escape(&p.observed),
            escape(&p.detail),
            escape(&r.method),
            escape(&p.property)
        );
    }
    out.push_str("</div>");
}

/// The measured proxy for complexity.
fn complexity_block(out: &mut String, r: &Row) {
    let c = &r.complexity_measured;
    let _ = write!(
        out,
        "<div id=\"{}\"><b>Complexity</b>: {}<p>Descriptors made by <code>open</code>, \
         counted in /proc/self/fd: {}; a name both sides must agree on: {}; context switches \
         of both processes per round trip, same cpu (getrusage): {}. Rerun it: \
         <code>ipc-audit bench {} --pin same</code></p></div>",
        evidence_id(&r.method, "complexity"),
        escape(&r.complexity),
        c.setup_fds.map_or("not counted".into(), |n| n.to_string()),
        if c.named { "yes" } else { "no" },
        c.switches_per_round_trip
            .map_or("not measured".into(), |s| format!("{s:.2}")),
        escape(&r.method)
    );
}

/// Every throughput measurement of `r`, and where CPU and allocations come from.
fn efficiency_block(out: &mut String, r: &Row) {
    let _ = write!(
        out,
        "<div id=\"{}\"><b>Efficiency</b>: {}",
        evidence_id(&r.method, "efficiency"),
        escape(&Table::efficiency_cell(r))
    );
    if r.throughput.is_empty() {
        out.push_str(
            "<p>No throughput measured (a transport that carries no data, or an error below).</p>",
        );
    } else {
        out.push_str(
            "<table><tr><th>size</th><th>sent</th><th>received</th><th>throughput</th>\
            <th>messages/s</th><th>CPU/msg</th><th>allocs/msg (receiver + sender)</th></tr>",
        );
        for t in &r.throughput {
            throughput_row(out, t);
        }
        out.push_str("</table>");
    }
    let headline = r.throughput_size.unwrap_or(65536);
    let _ = write!(
        out,
        "<p>One-way stream, cross cpu; CPU per message from the smallest size (or half a \
         round trip); allocations per message from the same-cpu round trips. Rerun it: \
         <code>ipc-audit bench {} --pin cross --size {headline}</code></p>",
        escape(&r.method)
    );
    for e in r.errors.iter().filter(|e| !e.starts_with("latency")) {
        let _ = write!(out, "<p class=\"err\">{}</p>", escape(e));
    }
    out.push_str("</div>");
}

fn throughput_row(out: &mut String, t: &Throughput) {
    let allocs = |a: Option<f64>| a.map_or("not counted".into(), |a| format!("{a:.2}"));
    let _ = write!(
        out,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{} + {}</td></tr>",
        bytes(t.size as f64),
        t.sent,
        t.received,
        rate(t.bytes_per_s),
        t.msgs_per_s,
        duration_ns(t.cpu_ns_per_msg),
        allocs(t.allocs_per_msg),
        allocs(t.peer_allocs_per_msg)
    );
}
