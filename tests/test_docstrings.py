"""The package's docstrings explain an idea the way the notebook that teaches it does (#26.3,
#26.14): the sentences the notebooks call wrong must not survive in the code students open."""

from __future__ import annotations

from medtl_helpers.explain import cam
from medtl_helpers.models.blocks import BasicBlock
from medtl_helpers.models.modes import train_mode


def test_the_basic_block_does_not_promise_a_clean_identity_path():
    doc = " ".join(BasicBlock.forward.__doc__.split())
    assert "undiminished" not in doc and "whatever F has learned" not in doc
    assert "not a clean identity path" in doc and "final ReLU" in doc  # 01's measurement


def test_train_mode_gives_03s_reason_for_keeping_frozen_batchnorm_in_eval():
    doc = " ".join(train_mode.__doc__.split())
    assert "overwrites" not in doc and "never trained on" not in doc  # the backwards reason
    assert "moving average" in doc and "depends on the other images in its batch" in doc


def test_cam_says_what_is_random_in_the_pneumonia_logits_weights():
    doc = " ".join(cam.__doc__.split())
    assert "half of its Grad-CAM weights" not in doc
    assert "not half of the channels" in doc


def test_discriminative_rates_give_the_argument_as_one_that_needs_pretrained_weights():
    from medtl_helpers.training.stages import discriminative_lrs

    doc = " ".join(discriminative_lrs.__doc__.split())
    assert "usual argument" in doc and "does not apply" in doc  # 05, section 4


def test_coral_in_heads_is_described_where_it_acts():
    from medtl_helpers.adaptation import coral, heads

    assert "between the features and the head" not in " ".join(heads.__doc__.split())
    assert "head's own outputs" in " ".join(heads.__doc__.split())
    assert "CORAL of its outputs" in " ".join(coral.deep_coral.__doc__.split())


def test_dropping_the_last_batch_names_where_a_batch_of_one_fails():
    from medtl_helpers.training.steps import class_weights, steps_per_epoch

    doc = " ".join(steps_per_epoch.__doc__.split())
    assert "fresh random remainder each epoch" in doc and "1 x 1" in doc
    assert "1:3" not in class_weights.__doc__


def test_04s_reasons_for_dropping_the_last_batch_and_for_the_weight_scale_are_the_docstrings():
    from medtl_helpers.training.steps import class_weights, steps_per_epoch

    doc = " ".join(steps_per_epoch.__doc__.split())
    assert "more than one value per channel" in doc and "only where a feature map is 1 x 1" in doc
    assert "not the same images every time" in doc  # 04, section 4
    assert "sum over the images to N" in " ".join(class_weights.__doc__.split())  # 04, exercise 1
