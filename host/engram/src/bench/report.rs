//! A benchmark report: figures with their median and spread, the peer's figure beside ours,
//! printed as a table and written as JSON.

use anyhow::Context;
use serde::Serialize;
use std::path::Path;

use super::machine::Machine;

/// Median and spread of repeated measurements of one quantity.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Median of the samples.
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Number of samples.
    pub samples: usize,
}

impl Summary {
    /// Summarise samples; returns `None` when there are none (or any is NaN).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let rank = ((0.99 * n as f64).ceil() as usize).clamp(1, n);
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            p99: sorted[rank - 1],
            samples: n,
        })
    }
}

/// Whether a larger figure is better (throughput) or worse (latency).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Larger is better (e.g. tokens/s).
    Higher,
    /// Smaller is better (e.g. latency).
    Lower,
}

/// One measured quantity, ours and (optionally) a peer's, measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Unit of the values.
    pub unit: String,
    /// Direction of "better".
    pub better: Better,
    /// Engram's measurement.
    pub ours: Summary,
    /// The peer's name and measurement, when there is one.
    pub peer: Option<(String, Summary)>,
    /// Ours relative to the peer on medians, oriented so > 1.0 means Engram is better.
    pub ratio: Option<f64>,
    /// A target stated by an issue, e.g. "≥ 1.0× llama.cpp".
    pub target: Option<String>,
}

impl Figure {
    /// A figure with no peer.
    pub fn alone(name: &str, unit: &str, better: Better, ours: Summary) -> Figure {
        Figure {
            name: name.to_string(),
            unit: unit.to_string(),
            better,
            ours,
            peer: None,
            ratio: None,
            target: None,
        }
    }

    /// A figure beside a peer's; computes the ratio (> 1.0 means Engram is better).
    pub fn against(
        name: &str,
        unit: &str,
        better: Better,
        ours: Summary,
        peer_name: &str,
        peer: Summary,
    ) -> Figure {
        let ratio = match better {
            Better::Higher if peer.median > 0.0 => Some(ours.median / peer.median),
            Better::Lower if ours.median > 0.0 => Some(peer.median / ours.median),
            _ => None,
        };
        Figure {
            peer: Some((peer_name.to_string(), peer)),
            ratio,
            ..Figure::alone(name, unit, better, ours)
        }
    }

    /// Attach the target an issue states for this figure.
    pub fn with_target(mut self, target: &str) -> Figure {
        self.target = Some(target.to_string());
        self
    }
}

/// The result of one suite.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Suite name.
    pub suite: String,
    /// Whether this was a `--quick` smoke run.
    pub quick: bool,
    /// The git commit of the checkout, when known.
    pub commit: Option<String>,
    /// The machine the run happened on.
    pub machine: Machine,
    /// The measured figures.
    pub figures: Vec<Figure>,
    /// Free-form remarks (what limits us, how inputs were formed…).
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report for `suite`.
    pub fn new(suite: &str, quick: bool, machine: &Machine) -> Report {
        Report {
            suite: suite.to_string(),
            quick,
            commit: git_commit(),
            machine: machine.clone(),
            figures: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Print the report as a table.
    pub fn print(&self) {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
        table.set_header([
            "figure",
            "unit",
            "ours (median)",
            "spread",
            "peer",
            "peer (median)",
            "ratio",
            "target",
        ]);
        for figure in &self.figures {
            let (peer_name, peer_median) = match &figure.peer {
                Some((name, summary)) => (name.clone(), format_value(summary.median)),
                None => (String::new(), String::new()),
            };
            table.add_row([
                figure.name.clone(),
                figure.unit.clone(),
                format_value(figure.ours.median),
                format!(
                    "{}..{} (n={})",
                    format_value(figure.ours.min),
                    format_value(figure.ours.max),
                    figure.ours.samples
                ),
                peer_name,
                peer_median,
                figure
                    .ratio
                    .map(|ratio| format!("{ratio:.2}×"))
                    .unwrap_or_default(),
                figure.target.clone().unwrap_or_default(),
            ]);
        }
        println!(
            "== bench {}{} on {} ({} cores, {:.1} GB/s measured read bandwidth)",
            self.suite,
            if self.quick { " (quick)" } else { "" },
            self.machine.cpu_model,
            self.machine.logical_cores,
            self.machine.read_bandwidth_gb_s
        );
        println!("{table}");
        for note in &self.notes {
            println!("note: {note}");
        }
    }

    /// Write the report as pretty JSON, creating parent folders.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

fn format_value(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    }
}

fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_and_even_sample_counts() {
        let odd = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (odd.median, odd.min, odd.max, odd.p99),
            (2.0, 1.0, 3.0, 3.0)
        );
        let even = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(even.median, 2.5);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn p99_is_nearest_rank() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(Summary::of(&samples).unwrap().p99, 198.0);
    }

    #[test]
    fn ratio_is_oriented_so_above_one_is_better() {
        let fast = Summary::of(&[20.0]).unwrap();
        let slow = Summary::of(&[10.0]).unwrap();
        let throughput = Figure::against(
            "t",
            "tok/s",
            Better::Higher,
            fast.clone(),
            "p",
            slow.clone(),
        );
        assert_eq!(throughput.ratio, Some(2.0));
        let latency = Figure::against("l", "ms", Better::Lower, fast, "p", slow);
        assert_eq!(latency.ratio, Some(0.5));
    }
}
