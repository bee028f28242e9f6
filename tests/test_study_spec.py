"""Study specs: validation messages name the bad key; every preset parses and resolves."""

from __future__ import annotations

import pytest

from shared_data import PUBLISHED
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
        (
            GOOD + "[repository]\nlabeling = { enabled = true, boundary_wobble = 1 }\n",
            "repository.labeling.boundary_wobble: unknown key",
        ),
        (GOOD + "[repository]\nlabeling = { boundary_jitter_nm = -0.1 }\n", "repository.labeling.boundary_jitter_nm"),
        (GOOD + "[repository]\nlabeling = { rose_threshold = nan }\n", "repository.labeling.rose_threshold"),
        (GOOD + "[repository]\nlabeling = { enabled = 'maybe' }\n", "repository.labeling.enabled"),
        (GOOD + "[repository]\nsource = '/data/real'\nlabeling = { enabled = true }\n", "repository: labeling:"),
    ],
)
def test_errors_name_the_key(text, needle):
    with pytest.raises(SpecError) as exc:
        parse_spec(text, source="s.toml")
    assert needle in str(exc.value)
    assert str(exc.value).startswith("s.toml") and "\n" not in str(exc.value)


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
    "Au5_423e": 8,
    "Au5_s100621_423e": 15,
    "Au5_s082621_FF": 8,
    "Au5_s102522_FF": 12,
    "Au5_s110922_FF": 14,
    "Au5_0p020nm": 8,
    "Au5_0p026nm": 18,
    "Au5_0p033nm": 6,
    "Au5_0p042nm": 9,
    "Au2p2_423e": 14,
    "Au10_423e": 15,
    "CdSe5_421e": 11,
    "Ag5_423e": 14,
    "Au5_s082621_std": 8,
}


def _assert_dataset_is_released_set(plan, dataset: str, ts, catalog) -> None:
    """Preset dataset `dataset` of `plan` holds exactly the catalog rows of released training set `ts`."""
    from temshift.realism.training_sets import catalog_query

    want = sorted(r["file"] for r in catalog.query(**catalog_query(ts, catalog)).records())
    task = plan.tasks[plan.datasets[dataset]]
    got = sorted(r["file"] for r in plan.tasks[task.deps["repo"]].inputs["rows"])
    assert got == want, ts.name


@pytest.mark.skipif(not (PUBLISHED / "model_details.csv").is_file(), reason="needs ../shared/data/published")
def test_dose_preset_holds_the_released_dose_series(tmp_path):
    """Each `dose` dataset is the real set its released model was trained on (the 423 e/A2 one: session 08/21)."""
    from temshift.catalog import Catalog
    from temshift.realism.training_sets import read_training_sets

    catalog = Catalog.published()
    plan = resolve(load_spec("dose"), tmp_path, "paper")
    sets = [ts for ts in read_training_sets(PUBLISHED) if abs(ts.pixel_scale_nm - 0.02) < 1e-9]
    assert sorted(ts.dose_e_per_A2 for ts in sets) == [80, 423, 884]
    for ts in sets:
        _assert_dataset_is_released_set(plan, f"Au5_{ts.dose_e_per_A2:g}e", ts, catalog)


@pytest.mark.skipif(not (PUBLISHED / "model_details.csv").is_file(), reason="needs ../shared/data/published")
def test_magnification_preset_holds_the_released_magnification_series(tmp_path):
    """Each `magnification` dataset is the real set its released model was trained on.

    The paper's 0.020 nm/px set of the series is the 423 e/A2 one of session 08/21; the 0.026 nm/px
    one is the 450 e/A2 set (447-450 e/A2), without the single 426 e/A2 frame.
    """
    from temshift.catalog import Catalog
    from temshift.realism.training_sets import read_training_sets

    catalog = Catalog.published()
    plan = resolve(load_spec("magnification"), tmp_path, "paper")
    sets = {f"{ts.pixel_scale_nm:.3f}": ts for ts in read_training_sets(PUBLISHED) if 400 <= ts.dose_e_per_A2 <= 460}
    assert sorted(sets) == ["0.020", "0.026", "0.033", "0.042"]
    for scale, ts in sets.items():
        _assert_dataset_is_released_set(plan, f"Au5_{scale.replace('.', 'p')}nm", ts, catalog)


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
    assert plan.datasets["Au5_s100621_FF"] == plan.datasets["Au5_s100621_423e"]
    assert plan.datasets["Au5_s082621_FF"] == plan.datasets["Au5_423e"]
    assert plan.datasets["Au5_s082621_FF"] == plan.datasets["Au5_s082621_std"]
    assert plan.datasets["Au5_0p020nm"] == plan.datasets["Au5_423e"]
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


def _repo_tasks(plan):
    return {name: plan.tasks[plan.tasks[key].deps["repo"]] for name, key in plan.datasets.items()}


def test_labeling_model_defaults_are_the_simulators():
    from dataclasses import fields

    from temshift.simulate.labels import LabelingModel
    from temshift.studies.spec import Labeling

    assert {f.name: f.default for f in fields(LabelingModel)} == Labeling().model_dump()


def test_hand_labels_plan_another_repository_and_off_plans_todays(tmp_path):
    exact = resolve(parse_spec(GOOD), tmp_path, "ci")
    off = resolve(parse_spec(GOOD + "[repository]\nlabeling = { boundary_offset_nm = 0.3 }\n"), tmp_path, "ci")
    hand_text = GOOD + "[repository]\nlabeling = { enabled = true, boundary_offset_nm = 0.3 }\n"
    hand = resolve(parse_spec(hand_text), tmp_path, "ci")
    # off (whatever the other keys say): the very same tasks, and no labeling input at all
    assert list(off.tasks) == list(exact.tasks)
    assert all("labeling" not in t.inputs for t in _repo_tasks(exact).values())
    # on: other repositories, hence other datasets and everything downstream
    for name, task in _repo_tasks(hand).items():
        assert task.key != _repo_tasks(exact)[name].key
        assert task.inputs["labeling"] == {
            "enabled": True,
            "rose_threshold": 5.0,
            "boundary_offset_nm": 0.3,
            "boundary_jitter_nm": 0.0,
        }
    assert not set(hand.datasets.values()) & set(exact.datasets.values())
    assert not {c.eval_key for c in hand.cells} & {c.eval_key for c in exact.cells}
    # another labelling parameter: another repository again
    other = resolve(parse_spec(hand_text.replace("0.3", "0.2")), tmp_path, "ci")
    assert not {t.key for t in _repo_tasks(other).values()} & {t.key for t in _repo_tasks(hand).values()}


def test_with_labeling_overrides_the_spec_and_names_bad_keys():
    from temshift.studies.spec import with_labeling

    spec = parse_spec(GOOD)
    assert with_labeling(spec, []) is spec
    on = with_labeling(spec, ["boundary_jitter_nm=0.15"]).repository.labeling
    assert on.enabled and on.boundary_jitter_nm == 0.15 and on.rose_threshold == 5.0
    assert not with_labeling(spec, ["enabled=false", "rose_threshold=3"]).repository.labeling.enabled
    with pytest.raises(SpecError, match=r"repository\.labeling\.boundary_wobble: unknown key"):
        with_labeling(spec, ["boundary_wobble=1"])
    with pytest.raises(SpecError, match=r"repository\.labeling\.rose_threshold"):
        with_labeling(spec, ["rose_threshold=-1"])
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        with_labeling(spec, ["boundary_offset_nm"])


def test_cli_labeling_option_shows_the_labels_and_refuses_bad_keys_in_one_line(cli, tmp_path):
    code, out, err = cli("study", "show", "dose", "--scale", "ci", "--labeling", "boundary_offset_nm=0.2")
    assert code == 0, err
    assert "modelled hand labels" in " ".join(out.split()) and "0.2 nm" in out
    code, out, err = cli("study", "show", "dose", "--scale", "ci")
    assert code == 0 and "exact labels" in out
    code, out, err = cli("study", "run", "dose", "--scale", "ci", "--out", tmp_path / "s", "--labeling", "wobble=1")
    assert code == 1 and "Traceback" not in err
    assert "repository.labeling.wobble: unknown key" in " ".join((out + err).split())
    assert not (tmp_path / "s").exists()  # refused before the study folder is made


def test_specimen_conditions_plan_another_repository_and_none_plan_todays(tmp_path):
    draws = resolve(parse_spec(GOOD), tmp_path, "ci")
    thick = resolve(parse_spec(GOOD + "[repository]\nspecimen = { support_thickness_A = 100 }\n"), tmp_path, "ci")
    assert all("specimen" not in t.inputs for t in _repo_tasks(draws).values())
    for name, task in _repo_tasks(thick).items():
        assert task.inputs["specimen"] == {"support_thickness_A": 100.0}
        assert task.key != _repo_tasks(draws)[name].key
    assert not {c.eval_key for c in thick.cells} & {c.eval_key for c in draws.cells}
    with pytest.raises(SpecError, match=r"repository\.specimen\.cluster_fraction"):
        parse_spec(GOOD + "[repository]\nspecimen = { cluster_fraction = 2 }\n")
    with pytest.raises(SpecError, match="synthetic repository only"):
        parse_spec(GOOD + "[repository]\nsource = '/data'\nspecimen = { support_thickness_A = 100 }\n")


def test_with_specimen_overrides_the_spec_and_names_bad_keys():
    from temshift.studies.spec import with_specimen

    spec = parse_spec(GOOD)
    assert with_specimen(spec, []) is spec
    on = with_specimen(spec, ["support_thickness_A=60", "illumination_scale=0"]).repository.specimen
    assert on.simulation_options() == {"support_thickness_A": 60.0, "illumination_scale": 0.0}
    with pytest.raises(SpecError, match=r"repository\.specimen\.film_A: unknown key"):
        with_specimen(spec, ["film_A=1"])
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        with_specimen(spec, ["support_thickness_A"])


def test_cli_specimen_option_shows_the_conditions_and_refuses_bad_keys_in_one_line(cli, tmp_path):
    code, out, err = cli("study", "show", "dose", "--scale", "ci", "--specimen", "support_thickness_A=100")
    assert code == 0, err
    assert "support_thickness_A = 100" in out
    code, out, err = cli("study", "show", "dose", "--scale", "ci")
    assert code == 0 and "the simulator's specimen draws" in " ".join(out.split())
    code, out, err = cli("study", "run", "dose", "--scale", "ci", "--out", tmp_path / "s", "--specimen", "film=1")
    assert code == 1 and "Traceback" not in err
    assert "repository.specimen.film: unknown key" in " ".join((out + err).split())
    assert not (tmp_path / "s").exists()
