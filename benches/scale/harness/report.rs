//! Figures beside their targets (issue 12), as a table and as JSON. A figure that misses its target
//! is printed as MISSED; a target whose figure could not be measured misses too.

use serde_json::{Value, json};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    AtMost(f64),
    Below(f64),
    Exactly(f64),
    /// Printed for information: issue 12 sets no target for it.
    None,
}

impl Target {
    fn met(self, value: Option<f64>) -> Option<bool> {
        let value = value.filter(|v| v.is_finite());
        match self {
            Target::None => None,
            Target::AtMost(t) => Some(value.is_some_and(|v| v <= t + 1e-9)),
            Target::Below(t) => Some(value.is_some_and(|v| v < t)),
            Target::Exactly(t) => Some(value.is_some_and(|v| (v - t).abs() < 1e-9)),
        }
    }

    fn text(self, unit: &str) -> String {
        let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
        match self {
            Target::None => "-".into(),
            Target::AtMost(t) => format!("<= {}{unit}", number(t)),
            Target::Below(t) => format!("< {}{unit}", number(t)),
            Target::Exactly(t) => format!("= {}{unit}", number(t)),
        }
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// A measured value and its unit.
#[derive(Debug, Clone, Copy)]
pub struct Measure {
    pub value: Option<f64>,
    pub unit: &'static str,
}

pub fn count(value: impl Into<Option<f64>>) -> Measure {
    Measure { value: value.into(), unit: "" }
}

pub fn seconds(value: f64) -> Measure {
    Measure { value: Some(value), unit: "s" }
}

pub fn ratio(value: impl Into<Option<f64>>) -> Measure {
    Measure { value: value.into(), unit: "x" }
}

pub fn mib(value: f64) -> Measure {
    Measure { value: Some(value), unit: "MiB" }
}

pub fn millis(value: f64) -> Measure {
    Measure { value: Some(value), unit: "ms" }
}

pub fn percent(value: impl Into<Option<f64>>) -> Measure {
    Measure { value: value.into(), unit: "%" }
}

/// `value / n`, when there is an n.
pub fn per(value: usize, n: usize) -> Option<f64> {
    (n > 0).then(|| value as f64 / n as f64)
}

#[derive(Debug, Clone)]
pub struct Row {
    pub section: String,
    pub figure: String,
    pub value: Option<f64>,
    pub unit: String,
    pub target: Target,
    /// How it was measured, or what it is made of.
    pub note: String,
}

impl Row {
    pub fn met(&self) -> Option<bool> {
        self.target.met(self.value)
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Breakdowns (call kinds, request kinds) and settings, for the JSON.
    pub details: serde_json::Map<String, Value>,
    section: String,
}

impl Report {
    /// The section the next figures belong to.
    pub fn section(&mut self, name: &str) {
        self.section = name.into();
    }

    /// A figure with a target.
    pub fn check(&mut self, figure: &str, measure: Measure, target: Target, note: &str) {
        let row = Row {
            section: self.section.clone(),
            figure: figure.into(),
            value: measure.value,
            unit: measure.unit.into(),
            target,
            note: note.into(),
        };
        eprintln!("scale:   {}", line(&row));
        self.rows.push(row);
    }

    /// A figure for information: issue 12 sets no target for it.
    pub fn info(&mut self, figure: &str, measure: Measure, note: &str) {
        self.check(figure, measure, Target::None, note);
    }

    pub fn detail(&mut self, key: &str, value: Value) {
        self.details.insert(key.into(), value);
    }

    pub fn find(&self, figure: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.figure == figure)
    }

    pub fn misses(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.met() == Some(false)).collect()
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        for row in &self.rows {
            if row.section != section {
                section = &row.section;
                out.push_str(&format!("\n[{section}]\n"));
            }
            out.push_str(&line(row));
            out.push('\n');
        }
        let misses = self.misses();
        out.push_str(&format!(
            "\n{} figures with a target; {} MISSED\n",
            self.rows.iter().filter(|r| r.met().is_some()).count(),
            misses.len()
        ));
        out
    }

    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({"section": r.section, "figure": r.figure, "value": r.value, "unit": r.unit,
                       "target": r.target.text(&r.unit), "met": r.met(), "note": r.note})
            })
            .collect();
        json!({"figures": rows, "details": self.details})
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(&self.to_json())?)?;
        Ok(())
    }
}

fn line(row: &Row) -> String {
    let value = match row.value {
        Some(v) => format!("{} {}", number(v), row.unit),
        None => "not measured".into(),
    };
    let verdict = match row.met() {
        Some(true) => "ok",
        Some(false) => "MISSED",
        None => "",
    };
    let note = if row.note.is_empty() { String::new() } else { format!("  ({})", row.note) };
    format!(
        "  {:<52} {:>16}   target {:<14} {:<6}{note}",
        row.figure,
        value.trim(),
        row.target.text(&row.unit),
        verdict
    )
}
