//! The audit's report: per transport and property, declared vs observed and a verdict.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The outcome of one property on one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// What was declared was observed (or nothing was declared).
    Pass,
    /// A declared guarantee was violated.
    Fail,
    /// Not run; the detail says why.
    Skipped,
}

impl Verdict {
    /// `pass`, `fail` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One property checked on one transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyResult {
    /// The property's name, e.g. `ordering`.
    pub property: String,
    /// What the transport declares about it.
    pub declared: String,
    /// What the audit saw.
    pub observed: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The minimal failing case, the reason for a skip, or the cases run.
    pub detail: String,
}

/// All properties of one transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportReport {
    /// The transport's name.
    pub name: String,
    /// One result per property, in the audit's order.
    pub properties: Vec<PropertyResult>,
}

/// The whole audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// One entry per transport audited.
    pub transports: Vec<TransportReport>,
}

impl Report {
    /// True when any verdict is [`Verdict::Fail`].
    pub fn failed(&self) -> bool {
        self.results().any(|(_, p)| p.verdict == Verdict::Fail)
    }

    /// Every (transport, result) pair.
    pub fn results(&self) -> impl Iterator<Item = (&str, &PropertyResult)> {
        self.transports
            .iter()
            .flat_map(|t| t.properties.iter().map(move |p| (t.name.as_str(), p)))
    }

    /// The result of `property` on `transport`, if it was run.
    pub fn get(&self, transport: &str, property: &str) -> Option<&PropertyResult> {
        self.results()
            .find(|(t, p)| *t == transport && p.property == property)
            .map(|(_, p)| p)
    }

    /// The report as JSON: `{"transports": [{"name", "properties": [...]}]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as an aligned text table, one row per transport and property.
    pub fn to_table(&self) -> String {
        let head = [
            "TRANSPORT",
            "PROPERTY",
            "DECLARED",
            "OBSERVED",
            "VERDICT",
            "DETAIL",
        ];
        let rows: Vec<[&str; 6]> = self
            .results()
            .map(|(t, p)| {
                [
                    t,
                    p.property.as_str(),
                    p.declared.as_str(),
                    p.observed.as_str(),
                    p.verdict.as_str(),
                    p.detail.as_str(),
                ]
            })
            .collect();
        let mut width = head.map(str::len);
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&head).chain(&rows) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    let _ = write!(line, "{c:<w$}  ", w = width[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let (mut pass, mut fail, mut skip) = (0, 0, 0);
        for (_, p) in self.results() {
            match p.verdict {
                Verdict::Pass => pass += 1,
                Verdict::Fail => fail += 1,
                Verdict::Skipped => skip += 1,
            }
        }
        let _ = writeln!(out, "{pass} passed, {fail} failed, {skip} skipped");
        out
    }
}
