//! The compiled, executable form of a definition. Immutable and `Send + Sync`:
//! one `Arc<Plan>` per organization is shared by every call.

use std::sync::Arc;
use std::time::Duration;

use super::schedule::Schedule;
use super::template::Template;

/// A validated definition, ready to run. Step references are indexes.
#[derive(Debug)]
pub struct Plan {
    pub(crate) steps: Vec<PlanStep>,
    pub(crate) start: usize,
    /// The hard deadline of a run.
    pub(crate) deadline: Duration,
}

impl Plan {
    pub(crate) fn new(steps: Vec<PlanStep>, start: usize, deadline: Duration) -> Self {
        Self {
            steps,
            start,
            deadline,
        }
    }

    /// The run's hard deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the plan has no steps (never true for a compiled plan).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

#[derive(Debug)]
pub(crate) struct PlanStep {
    pub id: Arc<str>,
    pub kind: StepKind,
}

#[derive(Debug)]
pub(crate) enum StepKind {
    Input {
        next: usize,
    },
    Note {
        next: usize,
    },
    Wait {
        ms: u64,
        next: usize,
    },
    Condition {
        branches: Vec<CondBranch>,
        default: usize,
    },
    Http(Box<HttpPlan>),
    Output {
        fields: Vec<(String, Template)>,
    },
    Schedule {
        schedule: Schedule,
        open: usize,
        closed: usize,
    },
    Split {
        key: Template,
        branches: Vec<SplitArm>,
        total: u64,
    },
}

impl StepKind {
    /// The steps this one may continue to.
    pub(crate) fn successors(&self) -> Vec<usize> {
        match self {
            Self::Input { next } | Self::Note { next } | Self::Wait { next, .. } => vec![*next],
            Self::Http(h) => vec![h.next],
            Self::Condition { branches, default } => branches
                .iter()
                .map(|b| b.next)
                .chain(std::iter::once(*default))
                .collect(),
            Self::Output { .. } => Vec::new(),
            Self::Schedule { open, closed, .. } => vec![*open, *closed],
            Self::Split { branches, .. } => branches.iter().map(|b| b.next).collect(),
        }
    }

    /// The step type's name, for the trace.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Self::Input { .. } => "input",
            Self::Note { .. } => "note",
            Self::Wait { .. } => "wait",
            Self::Condition { .. } => "condition",
            Self::Http(_) => "http",
            Self::Output { .. } => "output",
            Self::Schedule { .. } => "schedule",
            Self::Split { .. } => "split",
        }
    }
}

#[derive(Debug)]
pub(crate) struct CondBranch {
    pub name: String,
    pub when: Template,
    pub next: usize,
}

#[derive(Debug)]
pub(crate) struct SplitArm {
    pub name: String,
    pub weight: u32,
    pub next: usize,
}

#[derive(Debug)]
pub(crate) struct HttpPlan {
    pub method: String,
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    pub query: Vec<(String, Template)>,
    pub body: Option<Template>,
    pub timeout: Duration,
    pub next: usize,
}
