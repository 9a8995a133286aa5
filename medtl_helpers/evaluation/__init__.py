"""What is done with trained models: the test report, ensembles, and learning curves (07)."""

from medtl_helpers.evaluation.data_efficiency import (
    CurveSettings,
    learning_curve,
    nested_subsets,
    passes_needed,
    plot_learning_curve,
    pretrained_problem,
    repeats_needed,
    summarise,
)
from medtl_helpers.evaluation.ensemble import (
    Ensemble,
    Member,
    compare_members,
    hard_vote,
    majority_cut,
    soft_vote,
    vote_share,
    weights_fingerprint,
)
from medtl_helpers.evaluation.report import (
    compare_with_published,
    comparison_caveats,
    evaluation_report,
    report_table,
    throughput_line,
    write_report,
)

__all__ = [
    "CurveSettings",
    "Ensemble",
    "Member",
    "compare_members",
    "compare_with_published",
    "comparison_caveats",
    "evaluation_report",
    "hard_vote",
    "learning_curve",
    "majority_cut",
    "nested_subsets",
    "passes_needed",
    "plot_learning_curve",
    "pretrained_problem",
    "repeats_needed",
    "report_table",
    "soft_vote",
    "summarise",
    "throughput_line",
    "vote_share",
    "weights_fingerprint",
    "write_report",
]
