"""Tests for dataset tasks (the real-data suite): the shifts, determinism, and what happens
without scikit-learn."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch.nn.functional as F
from typer.testing import CliRunner

from minact.cli import app
from minact.errors import ConfigError
from minact.lab import suites
from minact.lab.loader import load_lab
from minact.lab.sampling import sample

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="needs scikit-learn (minact[suites])")


def _hide_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name.split(".")[0] == "sklearn" else real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@needs_sklearn
def test_the_real_suite_loads_with_its_shifts() -> None:
    lab = load_lab(suites.suite_path("real"))
    assert [t.name for t in lab.tasks] == [
        "digits_even_translated",
        "digits_low_contrast",
        "diabetes_bmi",
        "diabetes_age",
        "breast_cancer_radius",
    ]
    for task in lab.tasks:
        assert task.dataset is not None and task.target is None and task.variables == ()
        data = sample(task)
        assert len(data.x_id) == len(data.y_id) and len(data.x_ood) == len(data.y_ood)
        assert data.x_train.shape[1] == data.x_ood.shape[1]
        if task.kind == "classification":
            assert set(np.unique(data.y_train)) == {0.0, 1.0}
        else:
            assert abs(data.y_train.mean()) < 1e-9 and abs(data.y_train.std() - 1) < 1e-9


@needs_sklearn
def test_digit_shifts_move_or_brighten_other_images() -> None:
    lab = load_lab(suites.suite_path("real"))
    translated, contrast = (
        sample(lab.task("digits_even_translated")),
        sample(lab.task("digits_low_contrast")),
    )
    assert translated.x_train.shape == (512, 64) and translated.x_ood.shape == (256, 64)
    assert translated.x_train.max() <= 1.0 and translated.x_ood.max() <= 1.0
    # a one-pixel move keeps each image's ink or pushes some off the edge, never adds any
    grid = translated.x_ood.reshape(-1, 8, 8)
    assert np.all(grid.sum(axis=(1, 2)) > 0)
    assert contrast.x_train.max() == 1.0 and contrast.x_ood.max() == 1.5
    # OOD images are other images than the training ones
    train_rows = {row.tobytes() for row in contrast.x_train}
    assert not any((row / 1.5).tobytes() in train_rows for row in contrast.x_ood)


@needs_sklearn
def test_a_top_shift_holds_out_the_largest_values_of_its_feature() -> None:
    from sklearn.datasets import load_diabetes

    task = load_lab(suites.suite_path("real")).task("diabetes_bmi")
    data = sample(task)
    column = load_diabetes().feature_names.index("bmi")
    # standardised with the training rows: the OOD rows lie above every training row
    assert data.x_ood[:, column].min() >= data.x_train[:, column].max()
    assert len(data.x_ood) == round(0.2 * 442) and len(data.x_id) == len(data.x_ood)
    assert abs(data.x_train.mean(axis=0)).max() < 1e-9
    again = sample(task)
    np.testing.assert_array_equal(again.x_train, data.x_train)


@needs_sklearn
def test_dataset_errors_name_the_key(tmp_path: Path) -> None:
    base = '[[task]]\nname = "d"\nfamily = "t"\ndataset = "diabetes"\nshift = "top"\n'
    cases = [
        (
            base + 'feature = "height"\n',
            "key 'feature' 'height' is not a feature of 'diabetes'; known: age",
        ),
        (base, "key 'feature' names the column the 'top' shift sorts by"),
        (base.replace('"top"', '"contrast"'), "key 'shift' for 'diabetes' must be one of 'top'"),
        (base + 'feature = "bmi"\namount = 0.9\n', "key 'amount' must be a number > 0 and <= 0.5"),
        (base + 'feature = "bmi"\nkind = "classification"\n', "makes regression tasks"),
        (base.replace('"diabetes"', '"mnist"'), "key 'dataset' must be one of 'digits'"),
        (base + 'feature = "bmi"\ntarget = "x"\n', "key 'target' = 'x' is not for kind"),
        (
            base + 'feature = "bmi"\nlabel = "even"\n',
            "key 'label' for 'diabetes' must be one of ''",
        ),
    ]
    for text, message in cases:
        path = tmp_path / "tasks.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_lab(path)
        assert str(info.value).startswith(f"{path}: [[task]] 'd' (#1): "), text
        assert message in str(info.value), text


@needs_sklearn
def test_dataset_tasks_train_in_their_own_groups() -> None:
    from minact.sandbox.trainer import Job, Trainer

    lab = load_lab(suites.suite_path("real"))
    tasks = [lab.task("diabetes_bmi"), lab.task("breast_cancer_radius")]
    out = Trainer().train([Job(0, F.relu, t) for t in tasks])
    assert all(r.ok for r in out)
    (alone,) = Trainer().train([Job(0, F.relu, tasks[1])])
    assert alone.ood == out[1].ood


def test_without_scikit_learn_the_suite_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _hide_sklearn(monkeypatch)
    with pytest.raises(ConfigError, match=r"pip install 'minact\[suites\]'"):
        suites.suite_path("real")
    result = CliRunner().invoke(  # a well-formed hash: the suite is what fails
        app, ["rescore", "--suite", "real", "abcd1234", "--cache-dir", str(tmp_path / "c")]
    )
    assert result.exit_code == 1
    assert "--suite 'real': the 'real' suite needs sklearn" in result.stderr
    assert "pip install 'minact[suites]'" in result.stderr
    # a tasks file with a dataset task says the same, naming the task
    path = tmp_path / "tasks.toml"
    path.write_text(
        '[[task]]\nname = "d"\nfamily = "t"\ndataset = "diabetes"\nshift = "top"\nfeature = "bmi"\n'
    )
    with pytest.raises(
        ConfigError, match=r"'d' \(#1\): key 'dataset' 'diabetes' needs scikit-learn"
    ):
        load_lab(path)
