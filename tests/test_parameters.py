"""lab.parameters: every notebook's own defaults pass; a bad value is one ConfigError naming the notebook
parameter; a notebook run with one stops in its first cell with that error, having written no run."""
import json
from pathlib import Path

import pytest

from lab import parameters
from lab.errors import ConfigError

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.ipynb"))


def defaults(nb: Path) -> dict:
    cell = next(c for c in json.loads(nb.read_text())["cells"]
                if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", []))
    ns = {}
    exec("".join(cell["source"]), ns)
    return {k: v for k, v in ns.items() if k.isupper()}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebooks_defaults_pass_and_its_setup_cell_checks_them(nb):
    params = defaults(nb)
    parameters.check(params)
    assert set(params) - {"DATA_ROOT", "FIG_DIR", "RUNS_DIR", "RAY_ADDRESS"} <= set(parameters.RULES)
    setup = next(c for c in json.loads(nb.read_text())["cells"][1:] if c["cell_type"] == "code"
                 and "parameters" not in c.get("metadata", {}).get("tags", []))
    assert "parameters.check(globals())" in "".join(setup["source"])


@pytest.mark.parametrize("name,value,what", [
    ("THRESHOLD", 2.0, "'profile', None (unfiltered) or a number in [0, 1]"),
    ("THRESHOLD", float("nan"), "'profile', None (unfiltered) or a number in [0, 1]"),
    ("THRESHOLD", "profiles", "'profile', None (unfiltered) or a number in [0, 1]"),
    ("PROFILE", "smok", "one of 'smoke', 'study', 'paper', 'official', 'paper-rehearsal'"),
    ("STEPS", 0, "None or an integer >= 1"),
    ("CLASSIFIER_SEEDS", (0, -1), "None or a non-empty tuple of integers >= 0"),
    ("SWEEP", (None, 1.5), "None or a tuple of thresholds in [0, 1]"),
    ("T", True, "'profile' or a number in [0, 1]"),
    ("LAMBDA", -0.1, "'profile' or a number >= 0"),
    ("DATASET", "mnist", "None or one of"),
    ("TRAIN", "no", "'profile', True or False"),
])
def test_a_bad_value_names_the_parameter(name, value, what):
    with pytest.raises(ConfigError, match=rf"^The notebook parameter {name} must be {what.replace('(', '.').replace(')', '.').replace('[', '.').replace(']', '.')}"):
        parameters.check({"PROFILE": "smoke", name: value})


def test_profile_means_the_profiles_headline_value():
    assert parameters.from_profile("study", "threshold", "profile") == 0.9
    assert parameters.from_profile("paper-rehearsal", "ecgan_threshold", "profile") == pytest.approx(0.0007)
    assert parameters.from_profile("smoke", "threshold", None) is None  # None (unfiltered) stays
    assert parameters.from_profile("smoke", "ecgan_lambda", 0.3) == 0.3
    # the study's notebooks read the committed ledger (`lab study` trains); the other profiles train what they lack
    assert [parameters.from_profile(p, "train", "profile") for p in ("study", "smoke", "paper")] == [False, True, True]


def test_a_notebook_with_a_bad_threshold_stops_before_writing(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    from lab.notebooks import execute

    nb = next(p for p in NOTEBOOKS if p.name.startswith("04"))
    runs = tmp_path / "runs"
    with pytest.raises(PapermillExecutionError, match="notebook parameter THRESHOLD must be"):
        execute(nb, tmp_path / "out", {"PROFILE": "smoke", "THRESHOLD": 2.0, "RUNS_DIR": str(runs),
                                       "FIG_DIR": str(tmp_path / "fig")}, timeout=300)
    assert not runs.exists() and not (tmp_path / "fig").exists()
