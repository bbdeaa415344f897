//! `ipc-audit table`: the seed's comparison table, measured, with a progress bar.

use std::process::ExitCode;

use super::{TableFormat, launcher, select};
use crate::report;

pub(super) fn run_table(
    names: Vec<String>,
    quick: bool,
    (format, detail): (TableFormat, bool),
    svg: Option<std::path::PathBuf>,
) -> ExitCode {
    let selected = match select(&names) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = check_before_measuring(svg.as_deref()) {
        eprintln!("ipc-audit: {e}");
        return ExitCode::from(2);
    }
    let launcher = match launcher() {
        Ok(l) => l,
        Err(c) => return c,
    };
    if detail && !matches!(format, TableFormat::Text) {
        eprintln!("ipc-audit: --detail goes with --format text (md and json have every cell)");
        return ExitCode::from(2);
    }
    let t = measure_with_progress(&launcher, &selected, quick);
    match format {
        TableFormat::Text => out!("{}", t.to_text(detail)),
        TableFormat::Md => out!("{}", t.to_markdown()),
        TableFormat::Json => outln!("{}", t.to_json()),
        TableFormat::Csv => out!("{}", t.to_csv()),
    }
    eprintln!(
        "ipc-audit: table of {} methods measured in {:.1} s",
        t.rows.len(),
        t.seconds
    );
    if let Some(path) = svg {
        match t.to_svg() {
            Ok(s) => {
                if let Err(e) = std::fs::write(&path, s) {
                    eprintln!("ipc-audit: write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("ipc-audit: draw {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Measures the table of `selected` (the quick plan or the full one) with a progress bar
/// on stderr; `table` and `report` both measure through it.
pub(super) fn measure_with_progress(
    launcher: &crate::peer::PeerLauncher,
    selected: &[Box<dyn crate::transport::Transport>],
    quick: bool,
) -> report::Table {
    let plan = if quick {
        report::Plan::quick()
    } else {
        report::Plan::full()
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "measuring {len} steps  [{bar:30}] {pos}/{len}  {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let t = report::run(launcher, selected, &plan, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("{}  {}", p.subject, p.what));
    });
    bar.finish_and_clear();
    t
}

/// What can be refused before minutes of measuring: an invalid variable of the audit
/// ([`crate::audit::check_env`]: the table audits every transport) and an `--svg` path
/// whose directory is missing or not writable.
fn check_before_measuring(svg: Option<&std::path::Path>) -> Result<(), String> {
    crate::audit::check_env().map_err(|e| e.to_string())?;
    let Some(path) = svg else { return Ok(()) };
    if path.is_dir() {
        return Err(format!("--svg {}: is a directory", path.display()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(|e| {
        format!(
            "--svg {}: cannot write in the directory {}: {e}",
            path.display(),
            dir.display()
        )
    })
}
