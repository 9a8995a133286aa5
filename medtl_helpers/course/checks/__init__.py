"""Exercise checkers, one module per notebook; import them all from here.

Each checker runs the student's answer against the reference and explains the first difference
in words (shape, parameter count, which names were matched), never only "pass" or "fail".
"""

from medtl_helpers.course.checks import nb04, nb05, nb06, nb07, nb08, nb09
from medtl_helpers.course.checks.common import TODO, require_answer
from medtl_helpers.course.checks.nb00 import check_leaked_patients, check_pneumonia_shares
from medtl_helpers.course.checks.nb01 import check_basic_block, check_bottleneck_params
from medtl_helpers.course.checks.nb02 import check_conv_params, check_deepest_within
from medtl_helpers.course.checks.nb03 import check_freeze_groups, check_partial_count
from medtl_helpers.course.checks.nb04 import *  # noqa: F403
from medtl_helpers.course.checks.nb05 import *  # noqa: F403
from medtl_helpers.course.checks.nb06 import *  # noqa: F403
from medtl_helpers.course.checks.nb07 import *  # noqa: F403
from medtl_helpers.course.checks.nb08 import *  # noqa: F403
from medtl_helpers.course.checks.nb09 import *  # noqa: F403

__all__ = [
    "TODO",
    "require_answer",
    "check_basic_block",
    "check_bottleneck_params",
    "check_conv_params",
    "check_deepest_within",
    "check_freeze_groups",
    "check_leaked_patients",
    "check_partial_count",
    "check_pneumonia_shares",
    *nb04.__all__,
    *nb05.__all__,
    *nb06.__all__,
    *nb07.__all__,
    *nb08.__all__,
    *nb09.__all__,
]
