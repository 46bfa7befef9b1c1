"""One gzip-size recorder for the whole making (study.compare): the sizes of one architecture's
files are measured while the next trains, and the manifest still gets every record in the order
the variants were made, with each size's time under its own architecture."""

from __future__ import annotations

import threading

import pandas as pd

import study.variants as variants_module
from study.make.export import gzip_size
from study.records.manifest import read_manifest
from study.records.schema import ModelRecord
from study.variants import SizeRecorder


def _record(model: str, path: str, zero_check_ok: bool = True) -> ModelRecord:
    return ModelRecord(
        model=model,
        pruner="gmp",
        exporter="torch",
        sparsity=0.5,
        onnx_path=path,
        onnx_sha256="",
        input_shape=(1, 3, 8, 8),
        opset=13,
        raw_bytes=1,
        gzip_bytes=-1,
        prunable_params=1,
        zeros=0,
        measured_sparsity=0.0,
        accuracy=None,
        accuracy_dataset="",
        zero_check_ok=zero_check_ok,
        zero_check_detail="" if zero_check_ok else "conv.weight: 3 zeros of 4 kept",
        profile="global",
        mask="unstructured",
    )


def test_records_of_two_architectures_land_in_order_with_sizes_and_failures(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    names = ["a1.onnx", "a2.onnx", "b1.onnx"]
    for i, name in enumerate(names):  # different sizes and contents
        (tmp_path / "models" / name).write_bytes(bytes(range(256)) * (40 * (i + 1)) + b"\0" * 999)
    # The first file's size is held back until the second architecture has handed in its file:
    # the recorder must not write b1 (done first) before a1 and a2.
    release = threading.Event()
    measure = variants_module._with_gzip_size

    def held(out, rec, level):
        if rec.onnx_path.endswith("a1.onnx"):
            assert release.wait(30)
        return measure(out, rec, level)

    monkeypatch.setattr(variants_module, "_with_gzip_size", held)
    recorder = SizeRecorder(tmp_path, 9)
    recorder.add(_record("a", "models/a1.onnx"))
    recorder.add(_record("a", "models/a2.onnx", zero_check_ok=False))
    assert recorder.drain() == [] and read_manifest(tmp_path) == []  # a1 still measuring
    recorder.add(_record("b", "models/b1.onnx"))
    release.set()
    failures = recorder.close()
    assert recorder.added == 3

    records = read_manifest(tmp_path)
    assert [r.onnx_path for r in records] == [f"models/{n}" for n in names]
    assert [r.gzip_bytes for r in records] == [gzip_size(tmp_path / "models" / n) for n in names]
    assert {r.extra["gzip_level"] for r in records} == {9}
    assert [(f.stage, f.model, f.reason) for f in failures] == [
        ("zero-check", "a", "ONNX lost zeros: conv.weight: 3 zeros of 4 kept")
    ]
    assert recorder.drain() == []  # handed out once
    timings = pd.read_csv(tmp_path / "timings.csv")
    assert list(zip(timings.model, timings.stage, strict=True)) == [
        ("a", "gzip -9 a1.onnx"),
        ("a", "gzip -9 a2.onnx"),
        ("b", "gzip -9 b1.onnx"),
    ]
