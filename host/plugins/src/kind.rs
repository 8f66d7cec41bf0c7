//! The plugin kinds (one per WIT world) and what the host does when one fails.

use std::fmt;
use std::str::FromStr;

/// One plugin kind, i.e. one world of the `engram:plugin` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    /// `judge` world: accepts or rejects recall candidates.
    Judge,
    /// `recall-policy` world: ranks recall candidates.
    RecallPolicy,
    /// `capture` world: extracts facts from user text.
    Capture,
    /// `tool` world: tools the model can call.
    Tool,
    /// `agency` world: background memory maintenance rounds.
    Agency,
}

/// What a failed call turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The call is answered by the host's built-in default behaviour.
    FailOpen,
    /// The call is refused (no facts admitted, tool error, round skipped).
    FailClosed,
}

impl PluginKind {
    /// Every kind, in a stable order.
    pub const ALL: [PluginKind; 5] = [
        PluginKind::Judge,
        PluginKind::RecallPolicy,
        PluginKind::Capture,
        PluginKind::Tool,
        PluginKind::Agency,
    ];

    /// The WIT world name (`judge`, `recall-policy`, …).
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Judge => "judge",
            PluginKind::RecallPolicy => "recall-policy",
            PluginKind::Capture => "capture",
            PluginKind::Tool => "tool",
            PluginKind::Agency => "agency",
        }
    }

    /// The interface the component must export for this kind.
    pub fn export_interface(self) -> &'static str {
        match self {
            PluginKind::Judge => "judging",
            PluginKind::RecallPolicy => "ranking",
            PluginKind::Capture => "capturing",
            PluginKind::Tool => "tools",
            PluginKind::Agency => "maintenance",
        }
    }

    /// Whether this kind may be granted WASI capabilities at all. Judges and
    /// recall policies run with none, deterministically.
    pub fn may_use_wasi(self) -> bool {
        !matches!(self, PluginKind::Judge | PluginKind::RecallPolicy)
    }

    /// The fail-open / fail-closed policy of this kind.
    ///
    /// Judges and recall policies fall back to the built-in behaviour (recall
    /// keeps working); capture admits nothing rather than guess; a tool call
    /// returns an error to the model; an agency round is skipped.
    pub fn failure_policy(self) -> FailurePolicy {
        match self {
            PluginKind::Judge | PluginKind::RecallPolicy => FailurePolicy::FailOpen,
            PluginKind::Capture | PluginKind::Tool | PluginKind::Agency => {
                FailurePolicy::FailClosed
            }
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// Error parsing a [`PluginKind`] name.
#[derive(Debug, thiserror::Error)]
#[error("unknown plugin kind `{0}`: expected one of judge, recall-policy, capture, tool, agency")]
pub struct UnknownKind(pub String);

impl FromStr for PluginKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.world() == s || k.export_interface() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}
