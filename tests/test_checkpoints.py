"""course_utils.checkpoints: atomic writes, safe loading, clear mismatch messages."""

import os
import pickle

import pytest
import torch
from torch import nn

from course_utils.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    save_weights,
)


def small_model():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_round_trip_restores_model_optimizer_and_extra(tmp_path):
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    path = save_checkpoint(
        tmp_path / "a" / "last.pt", model, optimizer=optimizer, epoch=3, extra={"note": "hi"}
    )

    fresh = small_model()
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    state = load_checkpoint(path, fresh, optimizer=fresh_optimizer)
    assert state["epoch"] == 3 and state["extra"] == {"note": "hi"}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh_optimizer.state_dict()["state"][0]["momentum_buffer"].equal(
        optimizer.state_dict()["state"][0]["momentum_buffer"]
    )


def test_weights_round_trip(tmp_path):
    model = small_model()
    save_weights(model, tmp_path / "w.pt", metadata={"accuracy": 0.99})
    loaded = load_weights(small_model(), tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert read_checkpoint(tmp_path / "w.pt")["extra"]["metadata"] == {"accuracy": 0.99}


def test_wrong_model_is_explained(tmp_path):
    save_weights(small_model(), tmp_path / "w.pt")
    other = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(CheckpointError) as caught:
        load_weights(other, tmp_path / "w.pt")
    message = str(caught.value)
    assert "belongs to another model" in message
    assert "0.weight: checkpoint has shape (4, 3), model has (8, 3)" in message
    assert "Build the same model" in message


def test_missing_and_truncated_files_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "nothing.pt")
    path = save_weights(small_model(), tmp_path / "w.pt")
    data = path.read_bytes()
    for kept in (len(data) // 2, 1, len(data) - 10):  # 1 byte: torch alone would call it unsafe, not cut
        path.write_bytes(data[:kept])
        with pytest.raises(CheckpointError, match="cannot read checkpoint.*truncated") as caught:
            read_checkpoint(path)
        assert f"{kept:,} bytes" in str(caught.value) and "delete it and train again" in str(caught.value)


def test_an_empty_checkpoint_says_it_is_empty(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"")  # what a save killed before its first byte, or a failed copy, leaves
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\).*delete it and train again"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="is empty"):  # and so does loading it into a model
        load_weights(small_model(), path)


def test_a_folder_is_not_taken_for_a_missing_checkpoint(tmp_path):
    (tmp_path / "last.pt").mkdir()
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        read_checkpoint(tmp_path / "last.pt")


def test_a_checkpoint_without_read_permission_is_a_permission_problem_not_damage(tmp_path, monkeypatch):
    path = save_weights(small_model(), tmp_path / "w.pt")
    path.chmod(0o600)
    real_open = open

    def no_permission(file, *args, **kwargs):
        # What open() raises for another user's 0600 file (root, running the tests, may read anything).
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_permission)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert "no read permission" in message and "-rw-------" in message and f"chmod a+r {path}" in message
    assert "truncated" not in message and "delete" not in message


def test_arbitrary_pickles_are_never_executed(tmp_path):
    marker = tmp_path / "the payload ran"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pt"
    torch.save({"format": "course_utils.checkpoint/1", "payload": Evil()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused to load checkpoint") as caught:
        read_checkpoint(path)
    assert not marker.exists()
    message = str(caught.value)
    assert "holds code or objects that a checkpoint should not" in message
    assert "would run that code" in message and "unless you wrote the file yourself" in message
    assert "posix.mkdir" in message or "os.mkdir" in message  # what it refers to
    # torch's own message suggests weights_only=False (or allow-listing the code): never passed on.
    assert "weights_only" not in message and "safe_globals" not in message


def test_plain_state_dict_is_not_mistaken_for_a_checkpoint(tmp_path):
    torch.save(small_model().state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a course_utils checkpoint"):
        read_checkpoint(tmp_path / "plain.pt")


def test_an_interrupted_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    model = small_model()
    path = save_checkpoint(tmp_path / "last.pt", model, epoch=1)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, epoch=2)
    monkeypatch.undo()
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_the_grad_scaler_state_round_trips_and_no_scheduler_is_needed(tmp_path):
    model = small_model()
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    path = save_checkpoint(tmp_path / "last.pt", model, scaler=scaler, epoch=4)
    assert "scheduler_state" not in read_checkpoint(path)  # the learning rate comes from the step
    fresh = torch.amp.GradScaler("cpu", enabled=True)
    load_checkpoint(path, small_model(), scaler=fresh)
    assert fresh.get_scale() == 1024.0
