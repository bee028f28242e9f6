"""Extension tables: rescale methods (settings, study specs, CLI read one table); study specs reuse
PreprocessSettings (a TOML can switch x-ray removal off); one reader per frame format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from temshift.errors import SpecError
from temshift.preprocess import RESCALE_METHODS, PreprocessSettings, preprocess_frame, register_rescale, rescale
from temshift.studies.plan import resolve
from temshift.studies.spec import StudySpec, layered, parse_spec

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
name = "t"
{study}
[datasets.a]
where = {{ material = "Au", dose_e_per_A2 = "80±5", date = "06/15/22" }}
{a}
[datasets.b]
where = {{ material = "Au", dose_e_per_A2 = {{ value = 884, tol = 5 }}, date = "06/15/22" }}
{b}
[experiments.e]
train = ["a", "b"]
"""


def _dataset_inputs(text: str, tmp_path: Path) -> dict[str, dict]:
    """Preprocessing that the planned dataset tasks receive, by dataset name."""
    plan = resolve(parse_spec(text), tmp_path, "ci")
    return {name: plan.tasks[key].inputs["preprocess"] for name, key in plan.datasets.items()}


@pytest.fixture
def toy_method() -> Iterator[str]:
    """A rescale method registered for one test: every pixel becomes 7."""
    register_rescale("toy", lambda buf: np.multiply(buf, 0, out=buf) + 7, "every pixel 7 (test)")
    yield "toy"
    del RESCALE_METHODS["toy"]


def test_builtin_rescale_methods_come_from_the_table() -> None:
    assert list(RESCALE_METHODS) == ["standardize", "normalize", "histogram", "none"]
    for name, method in RESCALE_METHODS.items():
        assert method.name == name and method.description
        assert PreprocessSettings(rescale=name).rescale == name
    with pytest.raises(ValueError, match=r"unknown rescale method 'toy'.*standardize, normalize, histogram, none"):
        PreprocessSettings(rescale="toy")
    with pytest.raises(ValueError, match="unknown rescale method"):
        rescale(np.ones((4, 4)), "toy")
    with pytest.raises(ValueError, match="already registered"):
        register_rescale("normalize", lambda b: b, "again")


def test_a_registered_rescale_method_works_in_settings_spec_and_cli(toy_method: str, tmp_path: Path) -> None:
    from temshift.cli.common import rescale_name

    img = np.random.default_rng(0).poisson(300, (64, 64)).astype(np.float32)
    for flatfield in (True, False):
        out = preprocess_frame(img, PreprocessSettings(rescale=toy_method, flatfield=flatfield))
        assert out.dtype == np.float32 and np.all(out == 7)
    assert np.all(rescale(img, toy_method) == 7)
    inputs = _dataset_inputs(SPEC.format(study="", a=f'preprocess = {{ rescale = "{toy_method}" }}', b=""), tmp_path)
    assert inputs["a"]["rescale"] == "toy" and inputs["b"]["rescale"] == "standardize"
    assert rescale_name(toy_method) == "toy"


def test_unknown_rescale_in_spec_and_cli_names_the_key() -> None:
    import typer

    from temshift.cli.common import rescale_name

    with pytest.raises(SpecError, match=r"s\.toml: datasets\.a\.preprocess\.rescale: unknown rescale method 'fancy'"):
        parse_spec(SPEC.format(study="", a='preprocess = { rescale = "fancy" }', b=""), source="s.toml")
    with pytest.raises(typer.BadParameter, match="unknown rescale method 'fancy'; use one of standardize: mean 0"):
        rescale_name("fancy")


def test_study_toml_switches_xray_removal_off(tmp_path: Path) -> None:
    # before: `None` meant "the default" in the spec, so no TOML could reach xray_threshold=None
    inputs = _dataset_inputs(SPEC.format(study="", a="preprocess = { xray_threshold = false }", b=""), tmp_path)
    assert inputs["a"]["xray_threshold"] is None
    assert inputs["b"]["xray_threshold"] == 1500.0
    # study-wide off; a dataset that sets it wins, one that does not keeps the study's value
    text = SPEC.format(
        study="[preprocess]\nxray_threshold = false\nflatfield = false",
        a="preprocess = { xray_threshold = 900 }",
        b='preprocess = { rescale = "normalize" }',
    )
    inputs = _dataset_inputs(text, tmp_path)
    assert inputs["a"] == {**PreprocessSettings(xray_threshold=900, flatfield=False).model_dump(mode="json")}
    assert inputs["b"] == PreprocessSettings(xray_threshold=None, flatfield=False, rescale="normalize").model_dump(
        mode="json"
    )


def test_spec_preprocess_is_preprocess_settings() -> None:
    """A new PreprocessSettings field needs no edit in the spec: the spec holds PreprocessSettings itself."""
    spec = parse_spec(SPEC.format(study="", a="preprocess = { flatfield_downscale = 2 }", b=""))
    assert type(spec.datasets["a"].preprocess) is PreprocessSettings
    with pytest.raises(SpecError, match=r"datasets\.a\.preprocess\.flatfield_downscale"):
        parse_spec(SPEC.format(study="", a="preprocess = { flatfield_downscale = 0 }", b=""))
    with pytest.raises(SpecError, match=r"datasets\.a\.preprocess\.flat_field: unknown key"):
        parse_spec(SPEC.format(study="", a="preprocess = { flat_field = false }", b=""))
    assert layered(PreprocessSettings(flatfield=False), PreprocessSettings(rescale="none")) == PreprocessSettings(
        flatfield=False, rescale="none"
    )


def test_spec_json_round_trip_keeps_the_layers(tmp_path: Path) -> None:
    text = SPEC.format(study="[preprocess]\nflatfield = false", a="preprocess = { xray_threshold = false }", b="")
    spec = parse_spec(text)
    back = StudySpec.model_validate_json(spec.model_dump_json(indent=1))
    assert back == spec
    assert _dataset_inputs(text, tmp_path / "1") == {
        n: layered(back.preprocess, back.datasets[n].preprocess).model_dump(mode="json") for n in ("a", "b")
    }
    assert back.datasets["b"].preprocess.model_fields_set == set()


def test_spec_json_of_older_study_folders_still_loads() -> None:
    """spec.json written before this change stored unwritten preprocessing keys as null."""
    old = json.loads(parse_spec(SPEC.format(study="", a="", b="")).model_dump_json())
    nulls = {
        "xray_threshold": None,
        "flatfield": None,
        "flatfield_degree": None,
        "flatfield_downscale": None,
        "flatfield_iterations": None,
        "rescale": None,
    }
    old["preprocess"] = dict(nulls)
    old["datasets"]["a"]["preprocess"] = {**nulls, "flatfield": False}
    spec = StudySpec.model_validate(old)
    assert spec.preprocess == PreprocessSettings() and spec.preprocess.model_fields_set == set()
    assert spec.datasets["a"].preprocess.model_fields_set == {"flatfield"}


def test_docs_describe_every_builtin_rescale_method() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    step = text[text.index("**Rescaling**") : text.index("**Patches**")]
    for name in RESCALE_METHODS:
        assert name in step


def test_frame_readers_one_entry_per_format() -> None:
    from temshift.io import FRAME_READERS, frame_suffixes

    assert list(FRAME_READERS) == ["digitalmicrograph", "emd", "tia", "tiff", "image", "npy"]
    suffixes = [sfx for fmt in FRAME_READERS.values() for sfx in fmt.suffixes]
    assert len(suffixes) == len(set(suffixes)) and tuple(suffixes) == frame_suffixes()
    assert {".dm3", ".dm4", ".emd", ".ser", ".emi", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy"} == set(suffixes)
    assert all(fmt.name == name and fmt.description for name, fmt in FRAME_READERS.items())


def test_a_registered_frame_reader_is_read_like_the_others(tmp_path: Path) -> None:
    from temshift.errors import FrameReadError
    from temshift.io import FRAME_READERS, RawFrame, frame_suffixes, read_frame, register_frame_reader
    from temshift.io.frames import _FORMAT_OF

    def read_txt(path: Path) -> RawFrame:
        data = np.loadtxt(path, ndmin=2)
        return RawFrame(data, [{"name": "y", "units": "Å", "scale": 0.5}, {"name": "x", "units": "Å", "scale": 0.5}], 0)

    path = tmp_path / "f.frame"
    with pytest.raises(FrameReadError, match=r"unsupported frame format '\.frame' \(use \.dm3, \.dm4"):
        read_frame(path)
    path.write_text("1 2\n3 4\n")
    register_frame_reader("text", (".FRAME",), read_txt, "text grid (test)")
    try:
        frame = read_frame(path)
        assert frame.data.dtype == np.float32 and frame.data.tolist() == [[1, 2], [3, 4]]
        assert frame.pixel_scale_nm == pytest.approx(0.05)
        assert ".frame" in frame_suffixes()
        with pytest.raises(ValueError, match="already registered"):
            register_frame_reader("other", (".npy",), read_txt, "clash")
    finally:
        del FRAME_READERS["text"], _FORMAT_OF[".frame"]
