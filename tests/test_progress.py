import pytest
from tqdm import auto

from medtl_helpers.progress import FinalLine, progress_bar


@pytest.fixture
def text_mode(monkeypatch):
    monkeypatch.setenv("MEDTL_PROGRESS", "text")


def test_a_text_bar_prints_one_final_line(text_mode, capsys):
    assert list(progress_bar(range(138), desc="train 1/3")) == list(range(138))
    out, err = capsys.readouterr()
    assert out.startswith("train 1/3: 100%|██████████| 138/138 [") and out.count("\n") == 1
    assert err == ""


def test_a_text_bar_that_would_vanish_leaves_its_line_too(text_mode, capsys):
    for _ in progress_bar(range(5), desc="val", leave=False):
        pass
    assert capsys.readouterr().out.startswith("val: 100%|██████████| 5/5 [")


def test_a_text_bar_stopped_early_says_where(text_mode, capsys):
    with pytest.raises(KeyError):
        for i in progress_bar(range(10), desc="train"):
            if i == 3:
                raise KeyError(i)
    assert "| 3/10 [" in capsys.readouterr().out


def test_a_text_bar_updated_by_hand_and_closed_twice_prints_once(text_mode, capsys):
    bar = progress_bar(total=7, desc="Caching 7 images")
    bar.update(7)
    bar.close()
    bar.close()
    assert capsys.readouterr().out.count("7/7") == 1


def test_a_disabled_bar_prints_nothing(text_mode, capsys):
    assert list(progress_bar(range(3), desc="quiet", disable=True)) == [0, 1, 2]
    assert capsys.readouterr() == ("", "")


def test_without_the_variable_it_is_tqdm_auto(monkeypatch):
    monkeypatch.delenv("MEDTL_PROGRESS", raising=False)
    with progress_bar(range(3), disable=True) as bar:
        assert type(bar) is auto.tqdm and not isinstance(bar, FinalLine)


def test_an_unknown_mode_is_an_error_that_names_the_choices(monkeypatch):
    monkeypatch.setenv("MEDTL_PROGRESS", "txt")
    with pytest.raises(ValueError, match=r"MEDTL_PROGRESS='txt' is not one of auto, text"):
        progress_bar(range(3))
