//! `ipc-audit list`: every transport with its declared guarantees.

use super::Format;
use crate::transport;

pub(super) fn list(format: Format) {
    let all = transport::all();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|t| serde_json::json!({"name": t.name(), "guarantees": t.guarantees()}))
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        }
        Format::Table => {
            outln!(
                "{:<14} {:<8} {:<10} {:<8} {:>10} {:<6} {:<24} {:<9} PLATFORMS",
                "NAME",
                "DATA",
                "BOUNDARY",
                "ORDER",
                "MAX",
                "DUPLEX",
                "ACCESS",
                "MEET"
            );
            for t in &all {
                let g = t.guarantees();
                let enc = |v: &dyn SerdeName| v.text();
                outln!(
                    "{:<14} {:<8} {:<10} {:<8} {:>10} {:<6} {:<24} {:<9} {}",
                    t.name(),
                    if g.carries_data { "yes" } else { "no" },
                    enc(&g.boundaries),
                    enc(&g.ordering),
                    g.max_message,
                    if g.duplex { "yes" } else { "no" },
                    enc(&g.access),
                    enc(&g.rendezvous),
                    g.platforms.join(", ")
                );
            }
        }
    }
}

/// The serde name of an enum value, for the table.
trait SerdeName {
    fn text(&self) -> String;
}

impl<T: serde::Serialize> SerdeName for T {
    fn text(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}
