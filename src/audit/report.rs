//! The audit's report: per transport and property, declared vs observed and a verdict.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The outcome of one property on one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// What was declared was observed (or nothing was declared).
    Pass,
    /// A declared guarantee was violated.
    Fail,
    /// The transport has no such feature (it declares none): there is nothing to check.
    NotApplicable,
    /// The check could not run here; the detail gives the cause and what would make it
    /// run. Never a pass: `--strict` turns it into a failure.
    NotRun,
}

impl Verdict {
    /// `pass`, `fail`, `not-applicable` or `not-run` (as in the JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotApplicable => "not-applicable",
            Verdict::NotRun => "not-run",
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

    /// How many results have each verdict: pass, fail, not applicable, not run.
    pub fn counts(&self) -> [usize; 4] {
        let mut n = [0; 4];
        for (_, p) in self.results() {
            n[match p.verdict {
                Verdict::Pass => 0,
                Verdict::Fail => 1,
                Verdict::NotApplicable => 2,
                Verdict::NotRun => 3,
            }] += 1;
        }
        n
    }

    /// The summary line: `N passed, N failed, N not applicable, N not run`.
    pub fn summary(&self) -> String {
        let [pass, fail, na, not_run] = self.counts();
        format!("{pass} passed, {fail} failed, {na} not applicable, {not_run} not run")
    }

    /// Whether the report fails: any [`Verdict::Fail`], or with `strict` (`--strict`,
    /// `IPC_AUDIT_STRICT=1`) also any [`Verdict::NotRun`].
    pub fn fails(&self, strict: bool) -> bool {
        self.failed() || (strict && self.not_run())
    }

    /// One line per check not run: `transport / property: cause`.
    pub fn not_run_lines(&self) -> Vec<String> {
        self.results()
            .filter(|(_, p)| p.verdict == Verdict::NotRun)
            .map(|(t, p)| format!("{t} / {}: {}", p.property, p.detail))
            .collect()
    }

    /// True when any check was not run (see [`Verdict::NotRun`]).
    pub fn not_run(&self) -> bool {
        self.results().any(|(_, p)| p.verdict == Verdict::NotRun)
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
        let _ = writeln!(out, "{}", self.summary());
        out
    }
}
