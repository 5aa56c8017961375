//! The one table `npm run bench` prints, and its JSON twin.

use std::fmt::Write;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario name.
    pub scenario: &'static str,
    /// What was measured.
    pub measure: String,
    /// Spareband's figure.
    pub value: String,
    /// The baseline's figure from the same run ("" when none applies).
    pub baseline: String,
    /// The target ("" when none).
    pub target: String,
    /// Whether the target was met (None when there is no target).
    pub met: Option<bool>,
}

impl Row {
    /// A row without a target.
    pub fn info(scenario: &'static str, measure: &str, value: String, baseline: String) -> Row {
        Row {
            scenario,
            measure: measure.into(),
            value,
            baseline,
            target: String::new(),
            met: None,
        }
    }

    /// A row with a target and whether it was met.
    pub fn goal(
        scenario: &'static str,
        measure: &str,
        value: String,
        baseline: String,
        target: &str,
        met: bool,
    ) -> Row {
        Row {
            scenario,
            measure: measure.into(),
            value,
            baseline,
            target: target.into(),
            met: Some(met),
        }
    }
}

/// The rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let head = [
        "scenario",
        "measure",
        "spareband",
        "baseline",
        "target",
        "met",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.scenario.to_string(),
                r.measure.clone(),
                r.value.clone(),
                r.baseline.clone(),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let mut w = head.map(|h| h.len());
    for c in &cells {
        for (i, v) in c.iter().enumerate() {
            w[i] = w[i].max(v.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, c: &[String]| {
        let padded: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{v:<width$}", width = w[i]))
            .collect();
        let _ = writeln!(out, "| {} |", padded.join(" | ").trim_end());
    };
    line(&mut out, &head.map(String::from));
    let rule: Vec<String> = w.iter().map(|n| "-".repeat(*n)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for c in &cells {
        line(&mut out, c);
    }
    out
}

/// The rows as JSON, for tools.
pub fn json(rows: &[Row]) -> serde_json::Value {
    serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "scenario": r.scenario, "measure": r.measure, "value": r.value,
                    "baseline": r.baseline, "target": r.target, "met": r.met,
                })
            })
            .collect(),
    )
}

/// Bytes in binary units with one decimal.
pub fn bytes(n: f64) -> String {
    if n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", n / 1024.0)
    }
}

/// Microseconds as milliseconds with two decimals.
pub fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_marks_missed_targets() {
        let rows = vec![
            Row::goal(
                "small",
                "requests/s",
                "12345".into(),
                "40000".into(),
                ">= 20000",
                false,
            ),
            Row::info(
                "large",
                "relay memory growth",
                "3.0 MiB".into(),
                String::new(),
            ),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].contains("| NO"), "{t}");
        // Every row's separators line up with the header's.
        let bars = |l: &str| {
            l.match_indices('|')
                .map(|(i, _)| i)
                .take(5)
                .collect::<Vec<_>>()
        };
        assert_eq!(bars(lines[0]), bars(lines[2]));
        assert_eq!(bars(lines[0]), bars(lines[3]));
    }

    #[test]
    fn units() {
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
        assert_eq!(ms(1234), "1.23 ms");
    }
}
