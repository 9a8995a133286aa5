"""Domain adaptation (notebook 08): from a source site to a shifted target site.

Without target labels: AdaBN (`adabn`, re-estimated BatchNorm statistics) and Deep CORAL
(`coral`, the covariances of the head's outputs aligned). With a few target labels: the head on
frozen features (`heads`), plain fine-tuning and L2-SP (`l2sp`), joint training on the source's
labelled images and the target's few, L_source + λ·L_target (`joint`). DANN (`dann`) trains the
backbone until a domain discriminator cannot tell the sites apart. Measuring a shift (a domain
classifier, the head's log-odds) is in `shift`; choosing steps and λ on a few labelled target
patients in `selection`; a target site's roles and the runs compared at it in `compare`; the
rows, tables and plots of the results in `results`; how strong an acquisition change is (SSIM)
and what a mild and a strong level cost the source model, in `strength`. The data's own test
split as a new site, its rates and the table of repairs a hospital can make, in `new_site`.

Few-shot adaptation and meta-learning (notebook 09): patient-disjoint episodes with shuffled labels
(`episodes`; image-disjoint only on PneumoniaMNIST, which has no patient ids), nearest prototypes
and a prototypical head (`prototypes`), Reptile on a small head (`reptile`), the methods scored
over many episodes with their verdict (`few_shot`), and the settings and methods chosen on a
validation site (`few_shot_choice`).
"""

from medtl_helpers.adaptation.adabn import (
    adapt_batchnorm,
    batchnorm_drift,
    batchnorm_input_drift,
    batchnorm_input_statistics,
    batchnorm_layers,
    drift_rows,
    predict_with_batch_statistics,
    reset_batchnorm_statistics,
)
from medtl_helpers.adaptation.compare import (
    FewShot,
    Target,
    adapt_with_labels,
    coral_chosen,
    k_support,
    split_target,
)
from medtl_helpers.adaptation.coral import coral_distance, covariance, deep_coral
from medtl_helpers.adaptation.dann import (
    dann_chosen,
    dann_schedule,
    dann_training,
    domain_discriminator,
    reverse_gradient,
    separation_before_after,
)
from medtl_helpers.adaptation.episodes import (
    Episode,
    EpisodeStream,
    FeaturePool,
    feature_pool,
    sample_episode,
    sample_episodes,
    swap_labels,
)
from medtl_helpers.adaptation.few_shot import (
    compare_few_shot,
    k_table,
    mean_interval,
    paired_against,
    paired_difference,
    paired_tied_best,
    score_episode,
    score_method,
    tied_best,
    winners,
)
from medtl_helpers.adaptation.few_shot_choice import (
    choose_on_validation,
    few_shot_error,
    logistic_regression,
    logistic_with_c,
)
from medtl_helpers.adaptation.heads import as_features, head_probabilities, train_head
from medtl_helpers.adaptation.joint import joint_chosen, joint_training
from medtl_helpers.adaptation.l2sp import (
    distance_from_source,
    fine_tune,
    l2sp_penalty,
    scores_on,
    source_weights,
)
from medtl_helpers.adaptation.new_site import (
    NewSite,
    Repair,
    new_site,
    repairs_table,
    site_rates,
)
from medtl_helpers.adaptation.prior import (
    adjust_to_prior,
    bbse_prior,
    em_prior,
    prevalence_metrics,
    prior_estimates,
)
from medtl_helpers.adaptation.prototypes import (
    embedding_map,
    nearest_prototype,
    prototype_logits,
    prototypes,
    prototypical_head,
    train_prototypical,
)
from medtl_helpers.adaptation.repeats import paired_over_draws, repeat_draws
from medtl_helpers.adaptation.reptile import (
    adapt_head,
    fine_tuned,
    meta_head,
    meta_train,
    reptile_step,
)
from medtl_helpers.adaptation.results import (
    against_baseline,
    compare_methods,
    methods_table,
    plot_against_k,
    plot_by_site,
    result_row,
    with_interval,
)
from medtl_helpers.adaptation.selection import (
    BestOnValidation,
    balanced_log_loss,
    choose_setting,
    validation_scores,
)
from medtl_helpers.adaptation.shift import (
    domain_auroc,
    domain_auroc_interval,
    domain_predictions,
    domain_separation,
    logit_shift,
    proxy_a_distance,
)
from medtl_helpers.adaptation.strength import (
    LEVELS,
    ladder_summary,
    similarity_table,
    strength_ladder,
    structural_similarity,
)

__all__ = [
    "NewSite",
    "Repair",
    "domain_auroc_interval",
    "new_site",
    "repairs_table",
    "site_rates",
    "BestOnValidation",
    "Episode",
    "EpisodeStream",
    "FeaturePool",
    "FewShot",
    "LEVELS",
    "Target",
    "adapt_batchnorm",
    "adapt_head",
    "adapt_with_labels",
    "adjust_to_prior",
    "against_baseline",
    "as_features",
    "balanced_log_loss",
    "batchnorm_drift",
    "batchnorm_input_drift",
    "batchnorm_input_statistics",
    "batchnorm_layers",
    "bbse_prior",
    "choose_on_validation",
    "choose_setting",
    "compare_few_shot",
    "compare_methods",
    "coral_chosen",
    "coral_distance",
    "covariance",
    "dann_chosen",
    "dann_schedule",
    "dann_training",
    "deep_coral",
    "distance_from_source",
    "domain_auroc",
    "domain_discriminator",
    "domain_predictions",
    "domain_separation",
    "drift_rows",
    "em_prior",
    "embedding_map",
    "feature_pool",
    "few_shot_error",
    "fine_tune",
    "fine_tuned",
    "head_probabilities",
    "joint_chosen",
    "joint_training",
    "k_support",
    "k_table",
    "l2sp_penalty",
    "ladder_summary",
    "logistic_regression",
    "logistic_with_c",
    "logit_shift",
    "mean_interval",
    "meta_head",
    "meta_train",
    "methods_table",
    "nearest_prototype",
    "paired_against",
    "paired_difference",
    "paired_over_draws",
    "paired_tied_best",
    "plot_against_k",
    "plot_by_site",
    "predict_with_batch_statistics",
    "prevalence_metrics",
    "prior_estimates",
    "prototype_logits",
    "prototypes",
    "prototypical_head",
    "proxy_a_distance",
    "repeat_draws",
    "reptile_step",
    "reset_batchnorm_statistics",
    "result_row",
    "reverse_gradient",
    "sample_episode",
    "sample_episodes",
    "score_episode",
    "score_method",
    "scores_on",
    "separation_before_after",
    "similarity_table",
    "source_weights",
    "split_target",
    "strength_ladder",
    "structural_similarity",
    "swap_labels",
    "tied_best",
    "train_head",
    "train_prototypical",
    "validation_scores",
    "winners",
    "with_interval",
]
