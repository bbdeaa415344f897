//! `ipc-audit report --out DIR`: the table measured as `ipc-audit table` does, written
//! as DIR/table.json and rendered from that JSON into a self-contained DIR/index.html;
//! `--from FILE` renders a table measured before (`table --format json`) instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::table::measure_with_progress;
use super::{launcher, select};
use crate::report::Table;

/// The page's size above which the command warns (the budget).
const PAGE_BUDGET: usize = 1 << 20;

pub(super) fn run_report(
    names: Vec<String>,
    quick: bool,
    out: PathBuf,
    from: Option<PathBuf>,
) -> ExitCode {
    if let Some(json) = from {
        return render(&json, &out);
    }
    let selected = match select(&names) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = crate::audit::check_env() {
        eprintln!("ipc-audit: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = writable_dir(&out) {
        eprintln!("ipc-audit: --out {}: {e}", out.display());
        return ExitCode::from(2);
    }
    let launcher = match launcher() {
        Ok(l) => l,
        Err(c) => return c,
    };
    let t = measure_with_progress(&launcher, &selected, quick);
    match write_page(&out, &t) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Renders the table in the JSON file `json` into `out`, measuring nothing.
fn render(json: &Path, out: &Path) -> ExitCode {
    let table = std::fs::read_to_string(json)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str::<Table>(&s).map_err(|e| e.to_string()));
    let t = match table {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ipc-audit: --from {}: {e}", json.display());
            return ExitCode::from(2);
        }
    };
    if let Err(e) = writable_dir(out) {
        eprintln!("ipc-audit: --out {}: {e}", out.display());
        return ExitCode::from(2);
    }
    match write_page(out, &t) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Makes `dir` if needed and proves that a file can be made in it, before any measuring.
fn writable_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    tempfile::Builder::new()
        .prefix(".ipc-audit-write-check")
        .tempfile_in(dir)
        .map(drop)
}

/// Writes DIR/table.json, then DIR/index.html rendered from that JSON read back: the
/// page shows what the JSON holds and nothing computed beside it.
fn write_page(dir: &Path, t: &Table) -> Result<(), String> {
    let json = t.to_json();
    let json_path = dir.join("table.json");
    std::fs::write(&json_path, &json).map_err(|e| format!("write {}: {e}", json_path.display()))?;
    let back: Table = serde_json::from_str(&json)
        .map_err(|e| format!("read back {}: {e}", json_path.display()))?;
    let html = back.to_html();
    let page = dir.join("index.html");
    std::fs::write(&page, &html).map_err(|e| format!("write {}: {e}", page.display()))?;
    eprintln!(
        "ipc-audit: {} methods measured in {:.1} s; wrote {} ({} KiB) and {}",
        t.rows.len(),
        t.seconds,
        page.display(),
        html.len() / 1024,
        json_path.display()
    );
    if html.len() > PAGE_BUDGET {
        eprintln!(
            "ipc-audit: warning: {} is {} bytes, over the 1 MiB the page should stay under",
            page.display(),
            html.len()
        );
    }
    Ok(())
}
