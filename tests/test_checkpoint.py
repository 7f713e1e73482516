"""Checkpoints load without pickle; bad files get a one-line error naming the fix."""
import shutil

import pytest
from conftest import requires_fashion_mnist
import torch

from bayesprune.checkpoint import load_checkpoint, save_checkpoint
from bayesprune.data import load_dataset
from bayesprune.errors import ModelError
from bayesprune.nets import Architecture, build_model
from bayesprune.pretrained import resolve_model, shipped_models, sha256_of, models_dir
from bayesprune.training import evaluate


def _saved(tmp_path, name="smallcnn"):
    arch = Architecture(name, 1, 10, 28)
    save_checkpoint(tmp_path / "m.pt", build_model(arch), arch)
    return tmp_path / "m.pt"


def test_round_trip(tmp_path):
    model, arch, ckpt = load_checkpoint(_saved(tmp_path))
    assert arch.name == "smallcnn" and ckpt["pruning_history"] == []


def test_corrupted_and_foreign_files(tmp_path):
    path = _saved(tmp_path)
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="corrupted or truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(ModelError, match="not a bayesprune checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickles_with_code_are_refused_unless_trusted(tmp_path):
    torch.save({"format": "bayesprune-checkpoint", "evil": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="--trust-pickle"):
        load_checkpoint(tmp_path / "evil.pt")


def test_checkpoint_of_another_architecture(tmp_path):
    path = _saved(tmp_path, "resnet20")
    ckpt = torch.load(path, weights_only=True)
    ckpt["architecture"]["name"] = "smallcnn"
    torch.save(ckpt, tmp_path / "swapped.pt")
    with pytest.raises(ModelError, match="does not fit architecture smallcnn"):
        load_checkpoint(tmp_path / "swapped.pt")


def test_shipped_models_match_their_cards(mnist5k):
    info = shipped_models()["smallcnn-mnist5k"]
    assert sha256_of(models_dir() / info["file"]) == info["sha256"]
    resolved = resolve_model("smallcnn-mnist5k", mnist5k)
    accuracy = evaluate(resolved.model, mnist5k.test_x, mnist5k.test_y, torch.device("cpu"))
    assert accuracy == pytest.approx(info["test_accuracy"], abs=0.003) and accuracy > 0.95


def test_tampered_shipped_model_is_refused(tmp_path, monkeypatch, mnist5k):
    for suffix in (".pt", ".json"):
        shutil.copy(models_dir() / f"smallcnn-mnist5k{suffix}", tmp_path)
    data = bytearray((tmp_path / "smallcnn-mnist5k.pt").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "smallcnn-mnist5k.pt").write_bytes(bytes(data))
    monkeypatch.setenv("BAYESPRUNE_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="does not match its recorded sha256"):
        resolve_model("smallcnn-mnist5k", mnist5k)


@requires_fashion_mnist
def test_shipped_resnet20_matches_its_card():
    data = load_dataset("fashion-mnist")
    info = shipped_models()["resnet20-fashion-mnist"]
    resolved = resolve_model("resnet20-fashion-mnist", data)
    accuracy = evaluate(resolved.model, data.test_x, data.test_y, torch.device("cpu"))
    assert accuracy == pytest.approx(info["test_accuracy"], abs=0.003) and accuracy > 0.9
