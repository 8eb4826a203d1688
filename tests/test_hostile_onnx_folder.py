"""The ONNX graph folder under attack: planted links and graphs, truncated graphs, folders others
can write, and a store shared by a group whose members must all be able to use the graphs.

The graphs here are tiny real ONNX files (``y = k * x``) run by ONNX Runtime: the folder's
machinery is what is tested, not the CNN's export, so nothing takes seconds to export. An
honest graph has ``k = 2``; the attacker's has ``k = 21``, so that its vectors are 42.
Tests that need other users run as root and switch to unprivileged uids in child processes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from mmfeat import config_context, onnx_runtime  # noqa: E402
from mmfeat.errors import CacheError, CacheWarning  # noqa: E402

GRAPH = """
def tiny_graph(path, k=2.0):
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])
    node = helper.make_node("Mul", ["x", "k"], ["y"])
    graph = helper.make_graph([node], "tiny", [x], [y],
                              initializer=[helper.make_tensor("k", TensorProto.FLOAT, [], [k])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
"""
exec(GRAPH)  # tiny_graph, the same code the child processes run

KEY = {"model": "tiny"}
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
X = np.ones((1, 2), np.float32) * 2


class Exports:
    """An export function that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        tiny_graph(path)  # noqa: F821 - defined by exec(GRAPH)


def run(store: Path, export) -> np.ndarray:
    """The tiny graph's output in a fresh session (as a new process would make it)."""
    onnx_runtime._SESSIONS.clear()
    with config_context(cache_dir=store):
        return onnx_runtime.session("tiny", KEY, export).run(None, {"x": X})[0]


def graph_file(store: Path) -> Path:
    with config_context(cache_dir=store):
        return onnx_runtime.graph_path("tiny", KEY)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store"
    assert run(path, Exports()).tolist() == [[4.0, 4.0]]  # exported once, recorded
    return path


def test_the_digest_of_each_exported_graph_is_recorded(store):
    graph = graph_file(store)
    records = json.loads((store / onnx_runtime.RECORDS).read_text())
    import hashlib

    assert records == {graph.name: hashlib.sha256(graph.read_bytes()).hexdigest()}
    assert stat.S_IMODE(graph.stat().st_mode) == 0o600
    assert stat.S_IMODE(graph.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("kept", [0.5, 0.0])
def test_a_truncated_or_emptied_graph_is_exported_again(store, kept):
    graph = graph_file(store)
    data = graph.read_bytes()
    graph.write_bytes(data[: int(len(data) * kept)])
    export = Exports()
    with pytest.warns(CacheWarning, match="not the graph that was exported"):
        assert run(store, export).tolist() == [[4.0, 4.0]]
    assert export.calls == 1 and graph.read_bytes() == data
    assert run(store, export).tolist() == [[4.0, 4.0]] and export.calls == 1  # once is enough


def test_a_planted_graph_is_not_run(store):
    graph = graph_file(store)
    tiny_graph(graph, k=21.0)  # noqa: F821 - the attacker's constant 42 for an input of 2
    with pytest.warns(CacheWarning, match="not the graph that was exported"):
        assert run(store, Exports()).tolist() == [[4.0, 4.0]]


def test_a_planted_temporary_link_is_never_written_through(tmp_path):
    store, victim = tmp_path / "store", tmp_path / "victim.txt"
    victim.write_text("precious")
    (store / "onnx").mkdir(parents=True)
    graph = graph_file(store)
    # the temporary name an export used to write to: predictable from the pid
    (graph.parent / f".mmfeat-tmp-{graph.name}.{os.getpid()}").symlink_to(victim)
    assert run(store, Exports()).tolist() == [[4.0, 4.0]]
    assert victim.read_text() == "precious" and stat.S_IMODE(victim.stat().st_mode) != 0o600
    assert not graph.is_symlink()


def test_a_planted_lock_link_creates_nothing(tmp_path):
    store, target = tmp_path / "store", tmp_path / "created-by-the-lock"
    (store / "onnx").mkdir(parents=True)
    graph_file(store).with_suffix(".lock").symlink_to(target)
    with pytest.raises(CacheError, match="cannot open the lock"):
        run(store, Exports())
    assert not target.exists()


def test_a_graph_found_through_a_link_is_not_run(store, tmp_path):
    graph = graph_file(store)
    planted = tmp_path / "elsewhere.onnx"
    tiny_graph(planted, k=21.0)  # noqa: F821
    graph.unlink()
    graph.symlink_to(planted)
    with pytest.warns(CacheWarning):
        assert run(store, Exports()).tolist() == [[4.0, 4.0]]
    assert not graph.is_symlink()


@pytest.mark.parametrize("where", ["onnx", "store"])
def test_a_world_writable_folder_is_refused(store, where):
    folder = graph_file(store).parent if where == "onnx" else store
    folder.chmod(0o777)
    with pytest.raises(CacheError, match="is world-writable: ONNX graphs are only run from"):
        run(store, Exports())


@pytest.mark.skipif(not ROOT, reason="needs root to chown")
def test_a_folder_owned_by_another_user_is_refused(store):
    os.chown(graph_file(store).parent, 60002, 60002)
    with pytest.raises(CacheError, match=r"is owned by another user \(uid 60002\)"):
        run(store, Exports())


# ---------------------------------------------------------------------- other users


OWNER, MEMBER, ATTACKER, GROUP = 60001, 60003, 60002, 60000

def as_user(uid: int, store: Path, plant: bytes | None = None) -> dict:
    """In a forked child that becomes ``uid`` (in the store's group): plant ``plant`` as the
    graph if given (what any member of the group can do), else run the graph and report."""
    # What naming the graph reads from the installed packages is read here, before the fork:
    # the other user may not be allowed into the virtual environment (a private checkout).
    graph_file(store)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 1
        try:
            os.close(read)
            os.setgroups([GROUP])
            os.setgid(uid)
            os.setuid(uid)
            if plant is not None:
                target = graph_file(store)
                fd, tmp = tempfile.mkstemp(dir=target.parent)
                os.write(fd, plant)
                os.fchmod(fd, 0o644)  # readable by the victims
                os.close(fd)
                os.replace(tmp, target)
                report = {}
            else:
                export = Exports()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    out = run(store, export)
                report = {"out": out.tolist(), "exports": export.calls,
                          "warnings": [str(w.message) for w in caught]}
            os.write(write, json.dumps(report).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        report = json.loads(f.read() or "{}")
    os.waitpid(pid, 0)
    assert "error" not in report, report
    return report


@pytest.mark.skipif(not ROOT, reason="needs root to switch users")
def test_a_group_shared_store_serves_every_member_and_refuses_a_members_planted_graph():
    base = Path(tempfile.mkdtemp(prefix="mmfeat-shared-"))
    try:
        base.chmod(0o755)
        store = base / "store"
        store.mkdir()
        os.chown(store, OWNER, GROUP)
        store.chmod(0o2770)  # the shared store the docs recommend
        first = as_user(OWNER, store)
        assert first["out"] == [[4.0, 4.0]] and first["exports"] == 1
        folder, graph = store / "onnx", graph_file(store)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o2770 and folder.stat().st_gid == GROUP
        assert stat.S_IMODE(graph.stat().st_mode) == 0o660
        member = as_user(MEMBER, store)  # another member uses the graph as it is
        assert member["out"] == [[4.0, 4.0]] and member["exports"] == 0, member
        planted = base / "planted.onnx"
        tiny_graph(planted, k=21.0)  # noqa: F821
        as_user(ATTACKER, store, plant=planted.read_bytes())
        assert graph.stat().st_uid == ATTACKER
        again = as_user(MEMBER, store)
        assert again["out"] == [[4.0, 4.0]] and again["exports"] == 1, again
        assert any("not the graph that was exported" in w for w in again["warnings"]), again
    finally:
        shutil.rmtree(base, ignore_errors=True)
