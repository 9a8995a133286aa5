"""The notebook 03 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import functools

import pytest

from medtl_helpers.course.checks import TODO, check_freeze_groups, check_partial_count
from medtl_helpers.models import group_of
from medtl_helpers.models.freezing import freeze

RESNET34_PARTIAL = 19_937_794  # layer3 + layer4 + head of resnet34 with a 2-class linear head


def reference_freeze_groups(model, groups):
    """By the first component of each name, as the exercise asks."""
    for name, param in model.named_parameters():
        first = name.split(".")[0]
        param.requires_grad_(
            {"conv1": "stem", "bn1": "stem", "fc": "head"}.get(first, first) not in groups
        )


def substring_freeze_groups(model, groups):
    """The tutorial bug: a parameter is frozen when any group's module name appears in it."""
    names = {"stem": ("conv1", "bn1"), "head": ("fc",)}
    needles = [n for g in groups for n in names.get(g, (g,))]
    for name, param in model.named_parameters():
        param.requires_grad_(not any(needle in name for needle in needles))


def freeze_only(model, groups):
    """Freezes the right groups but never unfreezes the others."""
    for name, param in model.named_parameters():
        first = name.split(".")[0]
        group = {"conv1": "stem", "bn1": "stem", "fc": "head"}.get(first, first)
        if group in groups:
            param.requires_grad_(False)


def head_never_unfrozen(model, groups):
    """Sets the backbone by the list, but touches the head (fc) only to freeze it."""
    backbone = {"conv1": "stem", "bn1": "stem"}
    for name, param in model.named_parameters():
        first = name.split(".")[0]
        if first != "fc":
            param.requires_grad_(backbone.get(first, first) not in groups)
        elif "head" in groups:
            param.requires_grad_(False)


def raises_on_a_group(model, groups):
    modules = {"stem": ["conv1", "bn1"], "head": ["fc"]}
    for group in groups:
        for module in modules[group]:
            getattr(model, module).requires_grad_(False)


def stem_without_bn(model, groups):
    """Forgets that the stem's BatchNorm belongs to the stem."""
    for name, param in model.named_parameters():
        first = name.split(".")[0]
        group = {"conv1": "stem", "fc": "head"}.get(first, first)
        param.requires_grad_(group not in groups)


def test_freeze_groups_accepts_the_reference(capsys):
    check_freeze_groups(reference_freeze_groups)
    assert "Well done" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "used"),
    [
        (lambda m, g: freeze(m, g), "freeze"),
        (
            lambda m, g: [p.requires_grad_(group_of(n) not in g) for n, p in m.named_parameters()],
            "group_of",
        ),
        (freeze, "freeze"),
        (functools.partial(freeze), "freeze"),
    ],
)
def test_freeze_groups_refuses_the_package_functions_the_exercise_rules_out(answer, used):
    with pytest.raises(AssertionError) as err:
        check_freeze_groups(answer)
    assert str(err.value) == (
        f"freeze_groups uses {used}, which the exercise asks you not to use: find each "
        "parameter's group from the first component of its name yourself, and set "
        "requires_grad from it."
    )


def test_freeze_groups_explains_the_substring_bug():
    with pytest.raises(AssertionError, match=r"also froze layer1\.0\.conv1\.weight.*substring"):
        check_freeze_groups(substring_freeze_groups)


def test_freeze_groups_needs_the_other_groups_unfrozen():
    with pytest.raises(AssertionError, match=r"left conv1\.weight frozen.*requires_grad=True"):
        check_freeze_groups(freeze_only)


def test_freeze_groups_needs_the_head_unfrozen_too():
    with pytest.raises(AssertionError) as err:
        check_freeze_groups(head_never_unfrozen)
    assert str(err.value) == (
        "freeze_groups(model, ['stem', 'layer1', 'layer2']) left fc.weight frozen (2 tensors in "
        "all) although its group, head, is not in the list. The model arrived with everything "
        "frozen: set requires_grad=True on the other groups, as `freeze` does."
    )


def test_freeze_groups_explains_an_error_instead_of_a_traceback():
    with pytest.raises(AssertionError) as err:
        check_freeze_groups(raises_on_a_group)
    assert str(err.value).startswith(
        "freeze_groups(model, ['stem', 'layer1', 'layer2']) raised KeyError: 'layer1'. Go "
        "through model.named_parameters()"
    )


def test_freeze_groups_names_a_missed_parameter():
    with pytest.raises(AssertionError, match=r"left bn1\.weight trainable.*belongs to stem"):
        check_freeze_groups(stem_without_bn)


def test_partial_count_accepts_the_right_number(capsys):
    check_partial_count(RESNET34_PARTIAL)
    assert "Correct: resnet34" in capsys.readouterr().out


def test_partial_count_accepts_a_whole_number_float(capsys):
    check_partial_count(float(RESNET34_PARTIAL))  # e.g. a count computed with `/`
    assert "Correct: resnet34 with freeze 'partial' trains 19,937,794" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"^19,937,795 is not .*you are \+1 off"):
        check_partial_count(RESNET34_PARTIAL + 1.0)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (21_285_698, "every parameter"),
        (21_285_698 - RESNET34_PARTIAL, "FROZEN count"),
        (RESNET34_PARTIAL - 1026, "left out the head"),
        (
            RESNET34_PARTIAL - 2,
            r"the head has a bias per class too: 512 x 2 weights \+ 2 biases\.$",
        ),
        (10_494_466, "resnet18's count"),
        (RESNET34_PARTIAL + 10, r"\+10 off"),
        ("19937794", "give a whole number"),
        (RESNET34_PARTIAL + 0.5, r"a float \(19937794\.5\); give a whole number"),
    ],
)
def test_partial_count_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_partial_count(answer)


def test_checkers_ask_for_an_answer_on_the_student_placeholder():
    with pytest.raises(NotImplementedError, match="your freeze_groups is not written yet"):
        check_freeze_groups(TODO)
    with pytest.raises(NotImplementedError, match="your resnet34_partial is not written yet"):
        check_partial_count(TODO)


def _answer_from_notebook(source: str):
    """Run `source` as a notebook would, after cell 3's imports, and return its freeze_groups."""
    namespace = {"__name__": "__main__"}
    exec(
        "from medtl_helpers import freeze\nfrom medtl_helpers.models import group_of\n" + source,
        namespace,
    )
    return namespace["freeze_groups"]


OWN_GROUP_OF = """
MAP = {"conv1": "stem", "bn1": "stem", "fc": "head"}
def group_of(name):
    first = name.split(".")[0]
    return MAP.get(first, first)
def freeze_groups(model, groups):
    for name, p in model.named_parameters():
        p.requires_grad_(group_of(name) not in groups)
"""


def test_freeze_groups_accepts_a_students_own_helper_named_group_of(capsys):
    check_freeze_groups(_answer_from_notebook(OWN_GROUP_OF))
    assert "Well done" in capsys.readouterr().out


def test_freeze_groups_accepts_a_local_group_of_in_nested_code(capsys):
    source = (
        "def freeze_groups(model, groups):\n"
        "    def group_of(name):\n"
        "        return {'conv1': 'stem', 'bn1': 'stem', 'fc': 'head'}.get(name, name)\n"
        "    for name, p in model.named_parameters():\n"
        "        (lambda: p.requires_grad_(group_of(name.split('.')[0]) not in groups))()\n"
    )
    check_freeze_groups(_answer_from_notebook(source))
    assert "Well done" in capsys.readouterr().out


def test_freeze_groups_accepts_a_local_freeze_flag_and_own_imports(capsys):
    source = (
        "def freeze_groups(model, groups):\n"
        "    from medtl_helpers.models import build_model\n"
        "    import medtl_helpers.models as M\n"
        "    for name, p in model.named_parameters():\n"
        "        first = name.split('.')[0]\n"
        "        group = {'conv1': 'stem', 'bn1': 'stem', 'fc': 'head'}.get(first, first)\n"
        "        freeze = group in groups\n"
        "        p.requires_grad_(not freeze)\n"
    )
    check_freeze_groups(_answer_from_notebook(source))
    assert "Well done" in capsys.readouterr().out


def test_freeze_groups_accepts_an_own_group_of_method_on_a_local_object(capsys):
    source = (
        "class Groups:\n"
        "    def group_of(self, name):\n"
        "        first = name.split('.')[0]\n"
        "        return {'conv1': 'stem', 'bn1': 'stem', 'fc': 'head'}.get(first, first)\n"
        "def freeze_groups(model, groups):\n"
        "    mapping = Groups()\n"
        "    for name, p in model.named_parameters():\n"
        "        p.requires_grad_(mapping.group_of(name) not in groups)\n"
    )
    check_freeze_groups(_answer_from_notebook(source))
    assert "Well done" in capsys.readouterr().out


def test_freeze_groups_accepts_an_own_helper_inside_the_answer(capsys):
    source = OWN_GROUP_OF.replace("def freeze_groups", "def inner") + (
        "def freeze_groups(model, groups):\n"
        "    def group_of(name):\n        return 'never used'\n"
        "    return inner(model, groups)\n"
    )
    check_freeze_groups(_answer_from_notebook(source))
    assert "Well done" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("source", "used"),
    [
        ("f = freeze\nfreeze_groups = lambda m, g: f(m, g)", "freeze (through f)"),
        (
            "def helper(m, g):\n    return freeze(m, g)\nfreeze_groups = lambda m, g: helper(m, g)",
            "freeze (through helper)",
        ),
        (
            "class Freezer:\n    def __call__(self, m, g):\n        return freeze(m, g)\n"
            "freeze_groups = Freezer()",
            "freeze (through Freezer.__call__)",
        ),
        (
            "def make():\n    fr = freeze\n    return lambda m, g: fr(m, g)\n"
            "freeze_groups = make()",
            "freeze (through fr)",
        ),
        (
            "import medtl_helpers.models as M\n"
            "freeze_groups = lambda m, g: [p.requires_grad_(M.group_of(n) not in g) "
            "for n, p in m.named_parameters()]",
            "group_of (through M.group_of)",
        ),
        (
            "class Freezer:\n    def helper(self, m, g):\n        return freeze(m, g)\n"
            "    def __call__(self, m, g):\n        return self.helper(m, g)\n"
            "freeze_groups = Freezer()",
            "freeze (through Freezer.__call__, then self.helper)",
        ),
        ("def freeze_groups(m, g, f=freeze):\n    return f(m, g)", "freeze (through f)"),
        (
            "def freeze_groups(model, groups):\n"
            "    from medtl_helpers.models import group_of\n"
            "    for n, p in model.named_parameters():\n"
            "        p.requires_grad_(group_of(n) not in groups)",
            "group_of (through medtl_helpers.models.group_of)",
        ),
        (
            "def freeze_groups(m, g):\n    from medtl_helpers import freeze as fr\n"
            "    return fr(m, g)",
            "freeze (through medtl_helpers.freeze)",
        ),
        (
            "def freeze_groups(m, g):\n    import medtl_helpers.models.freezing as F\n"
            "    return F.freeze(m, g)",
            "freeze (through F.freeze)",
        ),
        (
            "def freeze_groups(m, g):\n    import medtl_helpers as H\n"
            "    return (lambda: H.freeze(m, g))()",
            "freeze (through H.freeze)",
        ),
        (
            "class K:\n    f = staticmethod(freeze)\n"
            "    def __call__(self, m, g):\n        return self.f(m, g)\n"
            "freeze_groups = K()",
            "freeze (through K.__call__, then self.f)",
        ),
        (
            "class K:\n    f = freeze\n    @classmethod\n"
            "    def go(cls, m, g):\n        return cls.f(m, g)\n"
            "freeze_groups = K.go",
            "freeze (through cls.f)",
        ),
        (
            "class K:\n    f = freeze\n    def helper(self, m, g):\n        return self.f(m, g)\n"
            "    def __call__(self, m, g):\n        return self.helper(m, g)\n"
            "freeze_groups = K()",
            "freeze (through K.__call__, then self.helper, then self.f)",
        ),
    ],
)
def test_freeze_groups_refuses_the_package_under_another_name(source, used):
    with pytest.raises(AssertionError) as err:
        check_freeze_groups(_answer_from_notebook(source))
    assert str(err.value).startswith(f"freeze_groups uses {used}, which the exercise asks you")


def test_freeze_groups_accepts_an_own_group_of_from_an_own_module_imported_inside(
    capsys, tmp_path, monkeypatch
):
    # the pass-5 review's case: a module of the student's own, imported inside the answer, whose
    # group_of has the package's name; the same import at the top level was already accepted
    (tmp_path / "mine.py").write_text(
        "def group_of(name):\n"
        "    first = name.split('.')[0]\n"
        "    return {'conv1': 'stem', 'bn1': 'stem', 'fc': 'head'}.get(first, first)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    source = (
        "def freeze_groups(model, groups):\n"
        "    import mine as M\n"
        "    for name, p in model.named_parameters():\n"
        "        p.requires_grad_(M.group_of(name) not in groups)\n"
    )
    check_freeze_groups(_answer_from_notebook(source))
    assert "Well done" in capsys.readouterr().out
