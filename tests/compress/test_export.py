"""`bell-edge export`: a verified bundle, its gate, and every bad input refused in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bell_edge.cli import main
from bell_edge.compress.pipeline import export_stages
from bell_edge.compress.quantize import check_trt_qdq
from bell_edge.runtime.bundle import read_bundle
from bell_edge.train.evaluate import evaluate_run


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_bundle_is_complete_and_verified(tiny_bundle):
    bundle = read_bundle(tiny_bundle)
    assert set(bundle.files) == {
        "model.onnx", "model.int8.onnx", "model.int8.trt.onnx", "MODEL_CARD.md",
    }  # fmt: skip
    m = bundle.manifest
    assert m["classes"] == ["NORM", "MI", "STTC", "CD", "HYP"] and len(m["thresholds"]) == 5
    assert m["calibration"]["windows"] == 512 and len(m["calibration"]["sha256"]) == 64
    assert abs(m["metrics"]["macro_drop"]) <= 0.05
    assert check_trt_qdq(bundle.files["model.int8.trt.onnx"]) == []
    assert "INT8" in bundle.files["MODEL_CARD.md"].read_text()


def test_evaluate_run_and_its_fp32_export_agree(tiny_classifier, tiny_bundle, ptbxl100):
    torch_run = evaluate_run(tiny_classifier, ptbxl100, "val", bootstrap=0)
    onnx_fp32 = evaluate_run(tiny_bundle, ptbxl100, "val", bootstrap=0, precision="fp32")
    assert abs(torch_run["macro_auroc"] - onnx_fp32["macro_auroc"]) < 1e-4
    int8 = json.loads(run("evaluate", tiny_bundle, "--data", ptbxl100, "--split", "val",
                          "--json", "--bootstrap", "0").stdout)  # fmt: skip
    assert int8["precision"].startswith("int8") and int8["n_records"] == 183
    text = run("evaluate", tiny_bundle, "--data", ptbxl100, "--split", "val", "--bootstrap", "0")
    assert f"macro AUROC {int8['macro_auroc']:.4f} (no CI)" in text.stdout
    assert "nan" not in text.stdout


def test_evaluating_a_bundle_imports_no_torch(tiny_bundle, ptbxl100):
    """A bundle is scored through the runtime alone, as a deployment host would run it."""
    args = ["evaluate", str(tiny_bundle), "--data", str(ptbxl100), "--split", "val",
            "--bootstrap", "0", "--json"]  # fmt: skip
    code = (
        "import sys\nfrom bell_edge.cli import main\n"
        f"main({args!r}, standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n_records"] == 183


def test_existing_bundle_needs_force(tiny_classifier, tiny_bundle, ptbxl100):
    result = run("export", tiny_classifier, "--out", tiny_bundle, "--int8", "--calib", ptbxl100)
    assert result.exit_code == 2 and "use --force" in result.stderr


def test_tampered_bundle_is_refused(tiny_bundle, tmp_path, ptbxl100):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    with (copy / "model.int8.onnx").open("r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = run("evaluate", copy, "--data", ptbxl100, "--split", "val")
    assert result.exit_code == 2
    assert "model.int8.onnx: sha256 does not match" in result.stderr


def test_checkpoint_that_is_not_fine_tuned(tmp_path, ptbxl100):
    import torch

    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    result = run("export", tmp_path / "other.pt", "--out", tmp_path / "b", "--int8",
                 "--calib", ptbxl100)  # fmt: skip
    assert result.exit_code == 2 and "not a fine-tuned bell-edge model" in result.stderr


def test_empty_calibration_folder(tiny_classifier, tmp_path, ptbxl100):
    (tmp_path / "empty").mkdir()
    result = run("export", tiny_classifier, "--out", tmp_path / "b", "--int8",
                 "--calib", tmp_path / "empty", "--eval", ptbxl100)  # fmt: skip
    assert result.exit_code == 2 and "no WFDB records" in result.stderr
    assert not (tmp_path / "b").exists()


def test_eval_set_with_other_classes(tiny_classifier, tmp_path, cpsc2018):
    challenge = tmp_path / "challenge"
    challenge.mkdir()
    for f in cpsc2018.glob("A198[0-2].*"):
        shutil.copy(f, challenge / f.name)
    for hea in challenge.glob("*.hea"):
        hea.write_text(hea.read_text() + "# Dx: 426783006\n")
    result = run("export", tiny_classifier, "--out", tmp_path / "b", "--int8",
                 "--calib", cpsc2018, "--eval", challenge)  # fmt: skip
    assert result.exit_code == 2 and "do not match the model's" in result.stderr


def test_tensorrt_without_gpu(tiny_classifier, tmp_path, ptbxl100):
    pytest.importorskip("torch")
    result = run("export", tiny_classifier, "--out", tmp_path / "b", "--int8", "--calib",
                 ptbxl100, "--engine", "tensorrt")  # fmt: skip
    assert result.exit_code == 2
    assert "tensorrt" in result.stderr and "\n" not in result.stderr.strip()


def test_the_model_card_states_the_runs_own_data(tiny_bundle, tiny_classifier, ptbxl100):
    bundle = read_bundle(tiny_bundle)
    card = bundle.files["MODEL_CARD.md"].read_text()
    subset = json.loads((tiny_classifier / "subset.json").read_text())
    data = bundle.manifest["data"]
    # Fine-tuned on 10% of the ptbxl100 cache's train records, from random init.
    assert data["fine_tuning"]["records"] == subset["n"] == len(subset["record_ids"])
    assert f"{subset['n']} records of `{subset['source']}`" in card
    assert f"label fraction {subset['fraction']}" in card
    assert "pretraining: none (random initialization)" in card
    # Evaluated and calibrated on the ptbxl100 folder itself: its 183 val records, 512 windows.
    assert data["evaluation"]["records"] == 183 and data["evaluation"]["split"] == "val"
    assert f"the val split of `{data['evaluation']['source']}`, 183 records" in card
    assert Path(data["evaluation"]["source"]).name == ptbxl100.name
    assert "(512 unlabeled windows, minmax" in card
    gate = bundle.manifest["metrics"]
    assert f"INT8 drop {100 * gate['macro_drop']:.2f} points" in card
    assert "95% CI" in card and "1.6k" not in card
    # the command that makes the bundle again, whole, and which classes it validated
    root = bundle.manifest["calibration"]["sources"][0]["root"]
    assert (f"--int8 --calib {root} --eval {data['evaluation']['source']} --method minmax`"
            in card and "--calib ..." not in card)  # fmt: skip
    fitted = bundle.manifest["training"]["fitted_classes"]
    assert f"flags the classes {', '.join(fitted)}" in card
    for heading in ("Device information", "Intended use", "Model inputs", "Model outputs",
                    "Development data", "Performance", "Known limitations"):  # fmt: skip
        assert f"\n## {heading}\n" in card


def test_the_model_card_states_rhythm_use_and_a_litert_model(tiny_bundle, tiny_classifier):
    """Without AFIB the card rules out rhythm alarms; with AFIB it says the AF alarm uses it. A
    LiteRT model's size, drop, gate and arena come from the export report."""
    import dataclasses

    from bell_edge.compress.card import model_card
    from bell_edge.models.artifact import load_classifier

    clf = load_classifier(tiny_classifier)
    manifest = read_bundle(tiny_bundle).manifest
    plain = model_card(tiny_classifier, clf, manifest, {})
    assert "Not for rhythm alarms." in plain and "LiteRT" not in plain
    rhythm = dataclasses.replace(clf, classes=(*clf.classes[:-1], "AFIB"))
    lite = {"int8": {"macro_auroc": 0.91234}, "macro_drop": 0.0012, "passed": True,
            "facts": {"bytes": 1341600, "converter": "litert-torch + ai-edge-quantizer",
                      "arena": {"activations": 44760}}}  # fmt: skip
    card = model_card(tiny_classifier, rhythm, manifest, {"litert": lite})
    assert "Not for rhythm alarms." not in card and "AF alarm" in card
    assert "1,341,600 bytes" in card
    assert "macro AUROC 0.9123, drop 0.12 points (gate passed)" in card
    assert "44,760 bytes of activations" in card


def test_an_unwritable_destination_is_refused_before_the_work(tiny_classifier, tmp_path):
    (tmp_path / "afile").write_text("")  # a file where the bundle's folder would go
    result = run("export", tiny_classifier, "--out", tmp_path / "afile" / "bundle")
    assert result.exit_code == 2 and "cannot write there" in result.stderr
    assert "stages" not in result.stderr  # refused before exporting anything
    assert len(result.stderr.strip().splitlines()) == 1


def test_without_eval_the_checks_use_the_fine_tuning_data(tiny_classifier, tmp_path):
    source = json.loads((tiny_classifier / "subset.json").read_text())["source"]
    result = run("export", tiny_classifier, "--out", tmp_path / "b")  # FP32, as DESIGN allows
    assert result.exit_code == 0, result.output
    assert f"note: checks on {source}, the data" in result.stderr
    stages = export_stages(int8=False, method="minmax", engine="onnx", litert=False)
    shown = [result.stderr.find(f"{i}/{len(stages)} stages") for i in range(len(stages))]
    assert -1 not in shown and shown == sorted(shown), result.stderr  # a bar over the stages
    assert all(name in result.stderr for name in stages)
    assert read_bundle(tmp_path / "b").manifest["data"]["evaluation"]["split"] == "val"
    bad = run("export", tiny_classifier, "--out", tmp_path / "c", "--int8", "--calib",
              tmp_path / "missing")  # fmt: skip
    assert bad.exit_code == 2 and "--calib" in bad.stderr and "missing" in bad.stderr


def test_a_folder_that_is_not_a_fine_tuned_run_says_what_it_looks_like(
    tiny_bundle, tiny_classifier, tmp_path, ptbxl100
):
    no_manifest = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, no_manifest)
    (no_manifest / "manifest.json").unlink()
    pretraining = tmp_path / "pretrain"
    pretraining.mkdir()
    (pretraining / "encoder.pt").write_bytes(b"")
    cases = {
        no_manifest: "a bundle without its manifest.json; export it again",
        pretraining: f"a pretraining run; fine-tune it first (bell-edge finetune --init "
        f"{pretraining} ...)",
        tmp_path / "empty": "not a fine-tuned run, a checkpoint or a bundle",
    }
    (tmp_path / "empty").mkdir()
    for folder, what in cases.items():
        for args in (
            ["evaluate", folder, "--data", ptbxl100],
            ["export", folder, "--out", tmp_path / "b"],
        ):
            result = run(*args)
            assert result.exit_code == 2, result.output
            assert result.stderr.strip().splitlines()[-1] == f"error: {folder}: no model.pt: {what}"
    whole = run("export", tiny_bundle, "--out", tmp_path / "b")
    assert whole.stderr == (
        f"error: {tiny_bundle}: no model.pt: a bundle; this takes the "
        "fine-tuned run it came from (its manifest's source_checkpoint)\n"
    )
    refused = run("finetune", "--data", ptbxl100, "--init", tiny_classifier, "--out",
                  tmp_path / "ft")  # fmt: skip
    assert refused.exit_code == 2
    assert f"{tiny_classifier}: a fine-tuning run, not a pretraining run" in refused.stderr
