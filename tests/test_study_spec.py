"""Study specs: validation messages name the bad key; every preset parses and resolves."""

from __future__ import annotations

import pytest

from temshift.errors import SpecError
from temshift.studies.plan import resolve
from temshift.studies.spec import load_spec, parse_spec, preset_names

GOOD = """
name = "t"
[datasets.a]
where = { material = "Au", dose_e_per_A2 = "80±5", date = "06/15/22" }
[datasets.b]
where = { material = "Au", dose_e_per_A2 = { value = 884, tol = 5 }, date = "06/15/22" }
[experiments.e]
train = ["a", "b"]
"""


def test_good_spec_and_where_forms():
    spec = parse_spec(GOOD)
    assert spec.scale == "quick" and spec.repository.synthetic
    assert spec.datasets["a"].query()["dose_e_per_A2"] == (80, 5)
    assert spec.datasets["b"].query()["dose_e_per_A2"] == (884, 5)


@pytest.mark.parametrize(
    "text, needle",
    [
        (GOOD + "colour = 1\n", "colour: unknown key"),
        (GOOD.replace("where = { material", "wher = { material", 1), "datasets.a.wher: unknown key"),
        (GOOD.replace('train = ["a", "b"]', 'train = ["a", "zz"]'), "experiments.e.train: unknown dataset 'zz'"),
        (GOOD + "[repository]\nmode = 'fast'\n", "repository.mode"),
        (GOOD + "[repository]\nframe_sise = 3\n", "repository.frame_sise: unknown key"),
        (GOOD.replace('train = ["a", "b"]', 'train = ["a"]\npairs = "some"'), "experiments.e.pairs"),
        (GOOD.replace('name = "t"', 'name = "t"\nscale = "huge"'), "scale"),
        ("name = [", "not valid TOML"),
    ],
)
def test_errors_name_the_key(text, needle):
    with pytest.raises(SpecError) as exc:
        parse_spec(text, source="s.toml")
    assert needle in str(exc.value)
    assert str(exc.value).startswith("s.toml")


def test_training_keys_checked_at_resolve(tmp_path):
    spec = parse_spec(GOOD + "[training]\nepoch = 3\n")
    with pytest.raises(SpecError, match=r"training\.epoch: unknown training setting"):
        resolve(spec, tmp_path, "ci")
    spec = parse_spec(GOOD + "[training]\nepochs = 0\n")
    with pytest.raises(SpecError, match=r"training\.epochs"):
        resolve(spec, tmp_path, "ci")


def test_filter_matching_nothing_names_the_dataset(tmp_path):
    spec = parse_spec(
        GOOD.replace('material = "Au", dose_e_per_A2 = "80±5"', 'material = "Pt", dose_e_per_A2 = "80±5"')
    )
    with pytest.raises(SpecError, match=r"datasets\.a\.where"):
        resolve(spec, tmp_path, "ci")


def test_spec_file_and_unknown_preset(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD.replace('name = "t"', 'name = "t"\ninclude = ["dose"]'))
    spec = load_spec(path)
    assert {"a", "b", "Au5_80e"} <= set(spec.datasets) and {"e", "dose"} == set(spec.experiments)
    with pytest.raises(SpecError, match="neither a spec file nor a preset"):
        load_spec("no-such-preset")


EXPECTED_FRAMES = {  # catalog rows behind each preset dataset (published_catalog.csv)
    "Au5_80e": 10,
    "Au5_884e": 13,
    "Au5_423e": 15,
    "Au5_s082621_FF": 8,
    "Au5_s102522_FF": 12,
    "Au5_s110922_FF": 14,
    "Au5_0p020nm": 23,
    "Au5_0p026nm": 19,
    "Au5_0p033nm": 6,
    "Au5_0p042nm": 9,
    "Au2p2_423e": 14,
    "Au10_423e": 15,
    "CdSe5_421e": 11,
    "Ag5_423e": 14,
    "Au5_s082621_std": 8,
}


@pytest.mark.parametrize("name", preset_names())
def test_presets_parse_and_resolve(name, tmp_path):
    spec = load_spec(name)
    for scale in ("ci", "quick", "paper"):
        plan = resolve(spec, tmp_path, scale)
        assert plan.cells and plan.counts()["train"] > 0
    plan = resolve(spec, tmp_path, "paper")
    for ds, key in plan.datasets.items():
        repo = plan.tasks[plan.tasks[key].deps["repo"]]
        if ds in EXPECTED_FRAMES:
            assert len(repo.inputs["rows"]) == EXPECTED_FRAMES[ds], ds


def test_all_preset_shares_datasets(tmp_path):
    plan = resolve(load_spec("all"), tmp_path, "ci")
    assert plan.datasets["Au5_s100621_FF"] == plan.datasets["Au5_423e"]
    assert plan.datasets["Au5_s082621_FF"] == plan.datasets["Au5_s082621_std"]
    assert set(load_spec("all").experiments) >= {
        "dose",
        "rescaling",
        "sessions_FF",
        "sessions_noFF",
        "magnification",
        "size",
        "material",
        "noise_rho",
        "noise_rho_max",
    }
