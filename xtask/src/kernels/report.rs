//! The matrix as a table (printed, and written as Markdown for the docs) and, below it, why
//! each failed row failed, with the last lines of what failed.
use std::{fmt::Write as _, sync::LazyLock, time::Duration};

use regex::Regex;

use super::transcript::{Outcome, StepResult};

/// The most instructions the verifier may process for one program: `webui-monitor check`'s
/// budget (`verifier::PROCESSED_INSNS_BUDGET`), a tenth of the kernel's limit.
const INSNS_BUDGET: u64 = 100_000;

/// Lines of a failure's output the report shows.
const TAIL: usize = 60;

/// `webui-monitor check`'s line per program, e.g. `ok    verifier webui_monitor_ingress 27846
/// insns processed (budget 100000, kernel limit 1000000), 1221 states (peak 793, at most 14
/// per insn), 26102 µs, stack 232+112`.
static VERIFIER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"verifier (\S+)\s+(\d+) insns processed .*?, (\d+) states .*?, (\d+) µs")
        .expect("a valid regex")
});

/// A step's column.
pub struct Column {
    pub name: &'static str,
    /// The step prints the verifier lines.
    pub verifier_stats: bool,
}

/// One row's run.
pub struct Row {
    pub name: &'static str,
    /// The exact kernel: release, Debian version and suite.
    pub version: String,
    /// Why this kernel, when it is not the obvious one.
    pub note: Option<String>,
    /// One per column.
    pub steps: Vec<StepResult>,
    /// What went wrong outside the steps.
    pub problem: Option<String>,
    pub console: Vec<String>,
    /// Wall time of the row, boot included.
    pub elapsed: Duration,
}

/// The verifier's work for one program.
struct Stats {
    program: String,
    insns: u64,
    states: u64,
    micros: u64,
}

struct Evaluated {
    row: Row,
    stats: Vec<Stats>,
    /// Why the row failed; empty if it passed.
    failures: Vec<String>,
}

pub struct Report<'a> {
    columns: &'a [Column],
    /// Every program some row reported, in the order they came.
    programs: Vec<String>,
    rows: Vec<Evaluated>,
}

impl<'a> Report<'a> {
    /// Reads the verifier statistics and judges each row: it fails on a problem outside the
    /// steps, a step that did not pass, a program over the budget, or — when the check passed
    /// — a program another row reports and this one does not.
    pub fn new(columns: &'a [Column], rows: Vec<Row>) -> Self {
        let rows: Vec<(Row, Vec<Stats>)> = rows
            .into_iter()
            .map(|row| {
                let stats = verifier_stats(columns, &row);
                (row, stats)
            })
            .collect();
        let mut programs: Vec<String> = Vec::new();
        for stats in rows.iter().flat_map(|(_, stats)| stats) {
            if !programs.contains(&stats.program) {
                programs.push(stats.program.clone());
            }
        }
        let rows = rows
            .into_iter()
            .map(|(row, stats)| {
                let mut failures: Vec<String> = row.problem.iter().cloned().collect();
                for (column, step) in columns.iter().zip(&row.steps) {
                    if step.outcome != Outcome::Passed {
                        failures.push(format!("{}: {}", column.name, step_cell(step)));
                    }
                    if column.verifier_stats && step.outcome == Outcome::Passed {
                        if programs.is_empty() {
                            failures.push(format!("{}: no verifier line", column.name));
                        }
                        for program in &programs {
                            if !stats.iter().any(|s| s.program == *program) {
                                failures.push(format!(
                                    "{}: no verifier line for {program}",
                                    column.name
                                ));
                            }
                        }
                    }
                }
                for s in stats.iter().filter(|s| s.insns > INSNS_BUDGET) {
                    failures.push(format!(
                        "{}: {} insns processed, over the budget of {INSNS_BUDGET}",
                        s.program, s.insns
                    ));
                }
                Evaluated {
                    row,
                    stats,
                    failures,
                }
            })
            .collect();
        Self {
            columns,
            programs,
            rows,
        }
    }

    /// The names of the rows that failed.
    pub fn failed_rows(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| !r.failures.is_empty())
            .map(|r| r.row.name)
            .collect()
    }

    /// The table with its legend and notes, as Markdown whose columns line up in a terminal.
    pub fn markdown(&self) -> String {
        let mut header = vec!["kernel".to_owned(), "version".to_owned()];
        header.extend(
            self.programs
                .iter()
                .map(|program| format!("`{program}` insns / states / µs")),
        );
        header.extend(self.columns.iter().map(|column| column.name.to_owned()));
        header.extend(["time".to_owned(), "result".to_owned()]);
        let mut table = vec![header];
        for evaluated in &self.rows {
            let row = &evaluated.row;
            let mut cells = vec![row.name.to_owned(), row.version.clone()];
            cells.extend(self.programs.iter().map(|program| {
                evaluated
                    .stats
                    .iter()
                    .find(|s| s.program == *program)
                    .map_or_else(
                        || "—".to_owned(),
                        |s| {
                            let over = if s.insns > INSNS_BUDGET {
                                " (over budget)"
                            } else {
                                ""
                            };
                            format!("{} / {} / {}{over}", s.insns, s.states, s.micros)
                        },
                    )
            }));
            cells.extend(row.steps.iter().map(step_cell));
            cells.push(format!("{:.0} s", row.elapsed.as_secs_f64()));
            cells.push(
                if evaluated.failures.is_empty() {
                    "pass"
                } else {
                    "FAIL"
                }
                .to_owned(),
            );
            table.push(cells);
        }

        let widths: Vec<usize> = (0..table[0].len())
            .map(|i| {
                table
                    .iter()
                    .map(|cells| cells[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let mut text = format!(
            "Kernel matrix (`cargo xtask test-kernels`): per kernel, the verifier's work for each \
             capture program\n(instructions processed, budget {INSNS_BUDGET} / states / \
             verification time, from `webui-monitor check`;\nthe time is emulated in the QEMU \
             rows), each step's result and time, and the row's wall time, boot\nunder QEMU (TCG) \
             included.\n\n"
        );
        text.push_str(&line(&table[0]));
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        text.push_str(&line(&rule));
        for cells in &table[1..] {
            text.push_str(&line(cells));
        }
        for evaluated in &self.rows {
            if let Some(note) = &evaluated.row.note {
                let _ = write!(text, "\n{}: {note}\n", evaluated.row.name);
            }
        }
        text
    }

    /// Why each failed row failed, with the last lines of each failed step and, for a problem
    /// outside the steps, of the console.
    pub fn failures(&self) -> String {
        let mut text = String::new();
        for evaluated in self.rows.iter().filter(|r| !r.failures.is_empty()) {
            let row = &evaluated.row;
            let _ = writeln!(text, "\n{} ({}) failed:", row.name, row.version);
            for failure in &evaluated.failures {
                let _ = writeln!(text, "  - {failure}");
            }
            for (column, step) in self.columns.iter().zip(&row.steps) {
                if !matches!(step.outcome, Outcome::Passed | Outcome::NotRun) {
                    let what = format!("{} {}", row.name, column.name);
                    step_output(&mut text, &what, &step.output);
                }
            }
            if row.problem.is_some() {
                tail(&mut text, &format!("{} console", row.name), &row.console);
            }
        }
        text
    }
}

/// A step's result in a few words: "pass 6.3 s", "FAIL (exit 1) 0.6 s".
pub fn step_cell(step: &StepResult) -> String {
    let time = step
        .duration
        .map(|d| format!(" {:.1} s", d.as_secs_f64()))
        .unwrap_or_default();
    match step.outcome {
        Outcome::Passed => format!("pass{time}"),
        Outcome::Failed(status) => format!("FAIL (exit {status}){time}"),
        Outcome::TimedOut => format!("TIMEOUT{time}"),
        Outcome::Hung => "HUNG".to_owned(),
        Outcome::NotRun => "not run".to_owned(),
        Outcome::NotBuilt => "NOT BUILT".to_owned(),
    }
}

/// The verifier lines in the output of the row's verifier-stats steps.
fn verifier_stats(columns: &[Column], row: &Row) -> Vec<Stats> {
    columns
        .iter()
        .zip(&row.steps)
        .filter(|(column, _)| column.verifier_stats)
        .flat_map(|(_, step)| &step.output)
        .filter_map(|line| {
            let captures = VERIFIER_LINE.captures(line)?;
            let number = |i: usize| captures[i].parse().ok();
            Some(Stats {
                program: captures[1].to_owned(),
                insns: number(2)?,
                states: number(3)?,
                micros: number(4)?,
            })
        })
        .collect()
}

/// Appends what a failed step printed: the lines that say why it failed (a test's panic and
/// the message after it, an `Error:` of a test or the daemon, a `FAIL` line of `webui-monitor
/// check`) from before its last [`TAIL`] lines — a test's error can be followed by hundreds of
/// lines of verifier log — then those.
fn step_output(text: &mut String, what: &str, lines: &[String]) {
    let before = lines.len().saturating_sub(TAIL);
    let telling = |index: usize| {
        let line = &lines[index];
        line.contains("panicked at")
            || line.starts_with("Error:")
            || line.starts_with("FAIL ")
            || index
                .checked_sub(1)
                .is_some_and(|i| lines[i].contains("panicked at"))
    };
    let telling: Vec<&String> = (0..before)
        .filter(|index| telling(*index))
        .map(|index| &lines[index])
        .take(TAIL / 3)
        .collect();
    if !telling.is_empty() {
        let _ = writeln!(
            text,
            "--- {what}: why, from before its last {TAIL} lines ---"
        );
        for line in telling {
            let _ = writeln!(text, "{line}");
        }
    }
    tail(text, what, lines);
}

/// Appends the last [`TAIL`] of `lines` under a heading.
fn tail(text: &mut String, what: &str, lines: &[String]) {
    let skipped = lines.len().saturating_sub(TAIL);
    let _ = writeln!(
        text,
        "--- {what}: {} ---",
        if skipped > 0 {
            format!("last {TAIL} of {} lines", lines.len())
        } else {
            format!("{} lines", lines.len())
        }
    );
    for line in &lines[skipped..] {
        let _ = writeln!(text, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_lines_are_read() {
        let line = "ok    verifier webui_monitor_ingress 27846 insns processed (budget 100000, \
                    kernel limit 1000000), 1221 states (peak 793, at most 14 per insn), 26102 µs, \
                    stack 232+112";
        let columns = [Column {
            name: "check",
            verifier_stats: true,
        }];
        let row = Row {
            name: "host",
            version: String::new(),
            note: None,
            steps: vec![StepResult {
                output: vec![line.to_owned(), "ok    XDP attach on lo".to_owned()],
                ..StepResult::new(Outcome::Passed)
            }],
            problem: None,
            console: Vec::new(),
            elapsed: Duration::ZERO,
        };
        let stats = verifier_stats(&columns, &row);
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].program, "webui_monitor_ingress");
        assert_eq!(
            (stats[0].insns, stats[0].states, stats[0].micros),
            (27846, 1221, 26102)
        );
    }
}
