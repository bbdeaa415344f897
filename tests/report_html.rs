//! The report page (`ipc-audit report`), built from a fixture of table data (the JSON
//! of a real `ipc-audit report --quick pipe udp posix-mq semaphore` run): no measuring,
//! so it is fast. Every evidence link must point at an element of the page.
#![cfg(feature = "cli")]

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use ipc_audit::audit::Verdict;
use ipc_audit::report::Table;

const FIXTURE: &str = include_str!("fixtures/table-quick.json");

fn fixture() -> Table {
    serde_json::from_str(FIXTURE).expect("the fixture is a table as `table --format json`")
}

/// Every value of `attr="..."` in `page`, in order.
fn attr_values<'a>(page: &'a str, attr: &str) -> Vec<&'a str> {
    let key = format!(" {attr}=\"");
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(i) = rest.find(&key) {
        rest = &rest[i + key.len()..];
        let end = rest.find('"').expect("attribute closed");
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// The in-page links whose target id is not in the page, and the ids given twice.
fn broken_links(page: &str) -> (Vec<String>, Vec<String>) {
    let mut ids = HashSet::new();
    let mut twice = Vec::new();
    for id in attr_values(page, "id") {
        if !ids.insert(id) {
            twice.push(id.to_string());
        }
    }
    let missing = attr_values(page, "href")
        .into_iter()
        .filter_map(|h| h.strip_prefix('#'))
        .filter(|t| !ids.contains(t))
        .map(str::to_string)
        .collect();
    (missing, twice)
}

/// The cells of the comparison table, as their inner HTML.
fn table_cells(page: &str) -> Vec<&str> {
    let start = page
        .find("<table id=\"table\">")
        .expect("the comparison table");
    let body = &page[start..];
    let body = &body[..body.find("</table>").expect("table closed")];
    body.split("<td>")
        .skip(1)
        .map(|c| &c[..c.find("</td>").expect("cell closed")])
        .collect()
}

#[test]
fn every_cell_links_to_evidence_that_exists() {
    let t = fixture();
    let page = t.to_html();
    let cells = table_cells(&page);
    assert_eq!(cells.len(), 7 * t.rows.len(), "7 cells per method");
    for c in &cells {
        assert!(
            c.starts_with("<a href=\"#ev-"),
            "cell without evidence link: {c}"
        );
    }
    let (missing, twice) = broken_links(&page);
    assert!(missing.is_empty(), "links to no element: {missing:?}");
    assert!(twice.is_empty(), "ids given twice: {twice:?}");
    for c in &cells {
        let id = &c["<a href=\"#".len()..c.find("\">").expect("link closed")];
        let at = page.find(&format!(" id=\"{id}\"")).expect("target exists");
        let block = &page[at..];
        let block = &block[..block.find("</div>").unwrap_or(block.len())];
        assert!(
            block.contains("<code>ipc-audit "),
            "the evidence of {id} has no command that reproduces it"
        );
    }
    let links = attr_values(&page, "href");
    for r in &t.rows {
        for p in &r.audit.properties {
            let id = format!("#audit-{}-{}", r.method, p.property);
            assert!(links.contains(&id.as_str()), "no link to {id}");
        }
    }
}

/// A control: the check above finds a link whose target is gone.
#[test]
fn the_link_check_finds_a_missing_target() {
    let page = fixture().to_html();
    let broken = page.replacen("id=\"ev-udp-latency\"", "id=\"gone\"", 1);
    assert!(page != broken, "the fixture has udp's latency evidence");
    let (missing, _) = broken_links(&broken);
    assert_eq!(missing, vec!["ev-udp-latency".to_string()]);
}

#[test]
fn the_page_is_self_contained_and_under_one_mebibyte_for_every_transport() {
    let mut t = fixture();
    // 13 methods, as a run of every transport has: the fixture's rows renamed.
    let base = t.rows.clone();
    t.rows = (0..13)
        .map(|i| {
            let mut r = base[i % base.len()].clone();
            r.method = format!("{}-{i}", r.method);
            r.audit.name = r.method.clone();
            r
        })
        .collect();
    let page = t.to_html();
    assert!(page.len() < 1 << 20, "page of {} bytes", page.len());
    let (missing, twice) = broken_links(&page);
    assert!(
        missing.is_empty() && twice.is_empty(),
        "{missing:?} {twice:?}"
    );
    for needle in ["<script", "<link", "src=", "url(", "@import", "<iframe"] {
        assert!(!page.contains(needle), "page has {needle}");
    }
    for href in attr_values(&page, "href") {
        assert!(
            href.starts_with('#') || href == "table.json",
            "link out of the page: {href}"
        );
    }
}

#[test]
fn text_from_the_data_is_escaped() {
    let mut t = fixture();
    t.rows[0].audit.properties[0].observed = "<script>alert(1)</script> & \"q\"".into();
    t.rows[0].security = "<b>bold</b>".into();
    let page = t.to_html();
    assert!(!page.contains("<script>alert"), "observed text not escaped");
    assert!(!page.contains("<b>bold"), "cell text not escaped");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"));
}

#[test]
fn the_page_shows_the_machine_the_floors_and_the_histograms() {
    let t = fixture();
    let page = t.to_html();
    assert!(page.contains(&t.machine.cpu_model));
    for f in &t.floor.details {
        let id = format!("id=\"floor-{}-{}\"", f.kind.name(), f.pin.name());
        assert!(page.contains(&id), "no {id}");
    }
    let histograms = page.matches("<svg class=\"hist\"").count();
    let measured = t.rows.iter().map(|r| r.latency.len()).sum::<usize>() + t.floor.details.len();
    assert_eq!(histograms, measured, "one histogram per latency and floor");
}

#[test]
fn an_unwritable_out_fails_at_once_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").expect("write");
    let out = file.join("report");
    let start = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_ipc-audit"))
        .args(["report", "--quick", "pipe", "--out"])
        .arg(&out)
        .output()
        .expect("run ipc-audit");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&out.display().to_string()),
        "stderr: {stderr}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "it measured first"
    );
    assert!(!out.exists());
}

#[test]
fn an_unknown_transport_fails_before_the_folder_is_made() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("report");
    let o = Command::new(env!("CARGO_BIN_EXE_ipc-audit"))
        .args(["report", "no-such-transport", "--out"])
        .arg(&out)
        .output()
        .expect("run ipc-audit");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-transport"));
    assert!(!out.exists(), "the folder was made for nothing");
}

#[test]
fn every_verdict_shows_in_the_matrix_with_its_class() {
    let mut t = fixture();
    let all = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::NotApplicable,
        Verdict::NotRun,
    ];
    for (i, p) in t.rows[0].audit.properties.iter_mut().take(4).enumerate() {
        p.verdict = all[i];
    }
    let page = t.to_html();
    let matrix = &page[page.find("<table class=\"matrix\">").expect("the matrix")..];
    let matrix = &matrix[..matrix.find("</table>").expect("matrix closed")];
    let first = &t.rows[0];
    for p in first.audit.properties.iter().take(4) {
        let v = p.verdict.as_str();
        let cell = format!(
            "<td class=\"{v}\"><a href=\"#audit-{}-{}\"",
            first.method, p.property
        );
        assert!(matrix.contains(&cell), "no {v} cell for {}", p.property);
    }
}

#[test]
fn from_renders_a_saved_table_and_writes_the_same_json_beside_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let saved = dir.path().join("saved.json");
    std::fs::write(&saved, FIXTURE).expect("write");
    let out = dir.path().join("page");
    let o = Command::new(env!("CARGO_BIN_EXE_ipc-audit"))
        .args(["report", "--from"])
        .arg(&saved)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run ipc-audit");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = std::fs::read_to_string(out.join("table.json")).expect("table.json");
    let back: Table = serde_json::from_str(&json).expect("table.json is a table");
    assert_eq!(back, fixture());
    let page = std::fs::read_to_string(out.join("index.html")).expect("index.html");
    assert_eq!(
        page,
        fixture().to_html(),
        "the page is the table's, nothing else"
    );
}
