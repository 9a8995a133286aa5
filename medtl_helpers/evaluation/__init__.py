"""What is done with trained models: the test report, ensembles, learning curves (07), a new
site's threshold from a few of its labelled patients (recalibration), and the operating-point
explorer of 04 and 08 (explorer; its controls in explorer_widget)."""

from medtl_helpers.evaluation.curve_reading import catch_up_verdict, paired_gains, schedule_gaps
from medtl_helpers.evaluation.data_efficiency import (
    CurveSettings,
    learning_curve,
    nested_subsets,
    passes_needed,
    plot_learning_curve,
    pretrained_problem,
    repeats_needed,
    summarise,
    training_plan,
)
from medtl_helpers.evaluation.diversity import error_overlap, overlap_difference
from medtl_helpers.evaluation.ensemble import (
    Ensemble,
    Member,
    build_member,
    compare_members,
    hard_vote,
    majority_cut,
    member_scores,
    soft_vote,
    soft_vote_against_best,
    vote_share,
    weights_fingerprint,
)
from medtl_helpers.evaluation.explorer import Scores, show_explorer
from medtl_helpers.evaluation.recalibration import (
    check_sensitivity,
    draw_calibration_patients,
    draws_summary,
    recalibrated_threshold,
    recalibration_draws,
    refit_bias,
    shift_logits,
)
from medtl_helpers.evaluation.report import (
    compare_with_published,
    comparison_caveats,
    evaluation_report,
    report_table,
    throughput_line,
    write_report,
)
from medtl_helpers.evaluation.val_vs_test import gap_intervals, validation_beside_test

__all__ = [
    "CurveSettings",
    "Ensemble",
    "Member",
    "Scores",
    "build_member",
    "catch_up_verdict",
    "check_sensitivity",
    "compare_members",
    "compare_with_published",
    "comparison_caveats",
    "draw_calibration_patients",
    "draws_summary",
    "error_overlap",
    "evaluation_report",
    "gap_intervals",
    "hard_vote",
    "learning_curve",
    "majority_cut",
    "member_scores",
    "nested_subsets",
    "overlap_difference",
    "paired_gains",
    "passes_needed",
    "plot_learning_curve",
    "pretrained_problem",
    "recalibrated_threshold",
    "recalibration_draws",
    "refit_bias",
    "repeats_needed",
    "report_table",
    "schedule_gaps",
    "shift_logits",
    "show_explorer",
    "soft_vote",
    "soft_vote_against_best",
    "summarise",
    "throughput_line",
    "training_plan",
    "validation_beside_test",
    "vote_share",
    "weights_fingerprint",
    "write_report",
]
