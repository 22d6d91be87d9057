"""Tables: the schema's column groups, records in manifests, the tabular encoder's fitted options,
bad records skipped and listed, and a real table (scikit-learn's wine) trained end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omnifuse.data.manifest import load_manifest
from omnifuse.data.prepare import fit_encoders
from omnifuse.data.schema import DatasetInfo, ManifestSchema, schema_path_for
from omnifuse.encoders import create
from omnifuse.encoders.tabular import MISSING_INDEX, UNSEEN_INDEX, TabularEncoder
from omnifuse.errors import InvalidValueError, ManifestError
from omnifuse.io import load_record

TABLE = {"numeric": ["age", "bmi"], "categorical": ["smoker"]}


def _write(tmp_path: Path, lines: list[str], *, suffix: str = ".jsonl") -> Path:
    path = tmp_path / f"patients{suffix}"
    path.write_text("".join(line + "\n" for line in lines))
    schema = ManifestSchema(
        modalities={"record": "tabular", "note": "text"}, labels=["label"], tables={"record": TABLE}
    )
    schema_path_for(path).write_text(json.dumps(schema.to_dict()))
    return path


def test_schema_checks_its_tables() -> None:
    with pytest.raises(ValueError, match=r"needs tables\.record"):
        ManifestSchema.from_dict({"modalities": {"record": "tabular"}})
    with pytest.raises(ValueError, match="not tabular modalities"):
        ManifestSchema.from_dict({"modalities": {"a": "text"}, "tables": {"a": {"numeric": ["x"]}}})
    with pytest.raises(ValueError, match="twice"):
        ManifestSchema.from_dict(
            {
                "modalities": {"r": "tabular"},
                "tables": {"r": {"numeric": ["x"], "categorical": ["x"]}},
            }
        )
    with pytest.raises(ValueError, match="unknown roles"):
        ManifestSchema.from_dict(
            {"modalities": {"r": "tabular"}, "tables": {"r": {"numbers": ["x"]}}}
        )


def test_csv_rows_become_records_and_bad_ones_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "id,split,age,bmi,smoker,note,label\n"
        "a,train,41,22.5,no,fine,healthy\n"
        "b,train,,31,yes,tired,sick\n"  # a missing age is allowed (flagged)
        "c,train,old,30,no,x,sick\n"  # not a number
        "d,train,50,inf,no,x,sick\n"  # an infinity
        "e,train,,,,only a note,healthy\n"  # no record at all: the modality is absent
    )
    schema = ManifestSchema(
        modalities={"record": "tabular", "note": "text"}, labels=["label"], tables={"record": TABLE}
    )
    schema_path_for(path).write_text(json.dumps(schema.to_dict()))
    manifest = load_manifest(path)
    assert [s["id"] for s in manifest.samples] == ["a", "b", "e"]
    assert manifest.samples[0]["record"] == {"age": "41", "bmi": "22.5", "smoker": "no"}
    assert "record" not in manifest.samples[2]
    reasons = {(i.line, i.column): i.reason for i in manifest.issues}
    assert "'old' is not a number" in reasons[(4, "record")]
    assert "inf" in reasons[(5, "record")]
    with pytest.raises(ManifestError, match="2 problem"):
        load_manifest(path, strict=True)


def test_a_row_missing_a_declared_column_is_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            '{"id": "a", "split": "train", "age": 30, "bmi": 20, "smoker": "no", "label": "x"}',
            '{"id": "b", "split": "train", "age": 30, "smoker": "no", "label": "x"}',
            '{"id": "c", "split": "val", "record": {"age": 1, "bmi": 2, "smoker": "yes"}, '
            '"label": "y"}',
            '{"id": "d", "split": "val", "record": {"age": 1, "bmi": 2}, "label": "y"}',
        ],
    )
    manifest = load_manifest(path)
    assert [s["id"] for s in manifest.samples] == ["a", "c"]
    assert [i.line for i in manifest.issues] == [2, 4]
    assert all("missing declared column" in i.reason for i in manifest.issues)
    assert "'bmi'" in manifest.issues[0].reason and "'smoker'" in manifest.issues[1].reason


def test_records_missing_values_and_unseen_categories() -> None:
    record = load_record({"age": float("nan"), "bmi": "", "smoker": 3}, ["age", "bmi"], ["smoker"])
    assert record.numbers == {"age": None, "bmi": None} and record.categories == {"smoker": "3"}
    with pytest.raises(InvalidValueError, match="'age'"):
        load_record({"age": True, "bmi": 1, "smoker": "no"}, ["age", "bmi"], ["smoker"])
    with pytest.raises(InvalidValueError, match="mapping"):
        load_record([1, 2, 3], ["age"], [])
    with pytest.raises(InvalidValueError, match="'smoker'"):
        load_record({"age": 1, "bmi": 1, "smoker": {"a": 1}}, ["age", "bmi"], ["smoker"])

    raws = [
        {"age": 20, "bmi": 20, "smoker": "no"},
        {"age": 40, "bmi": None, "smoker": "no"},
        {"age": 60, "bmi": 30, "smoker": "yes"},
    ]
    fitted = TabularEncoder.fit_options(raws, TABLE)
    assert fitted["mean"] == [40.0, 25.0] and fitted["categories"] == {"smoker": ["no", "yes"]}
    encoder = create("tabular", **TABLE, **fitted, dim=8)
    fields = encoder.preprocess({"age": 40, "bmi": None, "smoker": "sometimes"})
    assert fields["values"][0] == 0.0 and not bool(fields["present"][1])
    assert int(fields["codes"][0]) == UNSEEN_INDEX
    assert int(encoder.preprocess({"age": 1, "bmi": 1, "smoker": ""})["codes"][0]) == MISSING_INDEX
    out = encoder.encode([*raws, {"age": 1, "bmi": 1, "smoker": "never seen"}])
    assert out.tokens.shape == (4, 3, 8) and torch.isfinite(out.tokens).all()


def test_fit_encoders_reads_the_schema_and_the_training_split(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            '{"id": "a", "split": "train", "age": 10, "bmi": 20, "smoker": "no", "label": "x"}',
            '{"id": "b", "split": "train", "age": 30, "bmi": 20, "smoker": "yes", "label": "y"}',
            '{"id": "c", "split": "test", "age": 1000, "bmi": 20, "smoker": "cigar", "label": "y"}',
        ],
    )
    fitted = fit_encoders(load_manifest(path), {"record": {"name": "tabular", "dim": 8}})
    entry = fitted["record"]
    assert entry["numeric"] == ["age", "bmi"] and entry["categorical"] == ["smoker"]
    assert entry["mean"] == [20.0, 20.0], "test rows never shape the statistics"
    assert entry["categories"] == {"smoker": ["no", "yes"]} and entry["dim"] == 8
    again = fit_encoders(load_manifest(path), {"record": {**entry, "mean": [0.0, 0.0]}})
    assert again["record"]["mean"] == [0.0, 0.0], "given options win over fitted ones"


def test_wine_trains_end_to_end_from_the_recipe(tmp_path: Path) -> None:
    from omnifuse.models.folder import load_model
    from omnifuse.train.recipe import read_run_config, run

    config = read_run_config(
        "tables",
        [
            "data.dataset=wine",
            "data.seed=1",
            f"data.dir={tmp_path / 'wine'}",
            "train.epochs=15",
            "train.patience=null",
            f"output={tmp_path / 'model'}",
        ],
    )
    outcome = run(config)
    info = DatasetInfo.read(tmp_path / "wine")
    assert info.params["rows"] == 178 and info.params["features"] == 13
    assert outcome.metrics["test"]["accuracy"] > 0.8  # chance is 0.40 (the largest class)
    saved = json.loads((tmp_path / "model" / "config.json").read_text())["model"]
    assert len(saved["encoders"]["record"]["mean"]) == 13, "fitted statistics travel with the model"
    reloaded = load_model(tmp_path / "model")
    assert reloaded.encoder("record").numeric == saved["encoders"]["record"]["numeric"]
