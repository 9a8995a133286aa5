"""Exercise checkers, one module per notebook; import them all from here.

Each checker runs the student's answer against the reference and explains the first difference
in words (shape, parameter count, which names were matched), never only "pass" or "fail".
"""

from medtl_helpers.checks.nb00 import check_leaked_patients, check_pneumonia_shares
from medtl_helpers.checks.nb01 import check_basic_block, check_bottleneck_params
from medtl_helpers.checks.nb02 import check_conv_params, check_deepest_within
from medtl_helpers.checks.nb03 import check_freeze_groups, check_partial_count

__all__ = [
    "check_basic_block",
    "check_bottleneck_params",
    "check_conv_params",
    "check_deepest_within",
    "check_freeze_groups",
    "check_leaked_patients",
    "check_partial_count",
    "check_pneumonia_shares",
]
