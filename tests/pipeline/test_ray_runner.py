"""Embedding on Ray (a local Ray, one session for the module): the index it builds is the
local executor's, errors arrive as one line, and no Ray process outlives the runner."""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from lookalike import Index
from lookalike.errors import ExecutorError, ModelMismatchError
from lookalike.files.walk import FileEntry
from lookalike.pipeline import EmbeddedFile, EmbedderSpec, LocalRunner, Mapper
from lookalike.pipeline.ray_runner import RayRunner, _in_order
from lookalike.store import ImageRecord, Store

CORRUPT, EMPTY = "corrupt.jpg", "empty.png"


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            found[int(entry)] = (int(fields[1]), fields[0])
    return found


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in _processes().items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie has exited)."""
    return {pid for pid, (_, state) in _processes().items() if pid in pids and state != "Z"}


@pytest.fixture(scope="module")
def ray_runner() -> Iterator[RayRunner]:
    """One local Ray for the module (starting one takes seconds), with two actors; after
    it, every process it started must have exited."""
    before = _descendants(os.getpid())
    with RayRunner(actors=2) as runner:
        runner.start()
        assert runner.startup_s is not None
        started = _descendants(os.getpid()) - before
        assert started, "a local Ray runs its own processes"
        yield runner
        started |= _descendants(os.getpid()) - before  # the actors' workers too
    deadline = time.monotonic() + 30
    while (left := _alive(started)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray processes left running after shutdown: {sorted(left)}"


@pytest.fixture(scope="module")
def folder(photo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos (one under a name that is not UTF-8), a file that is no image and an
    empty one."""
    root = tmp_path_factory.mktemp("ray") / "photos"
    shutil.copytree(photo_library, root)
    (root / "coffee.jpg").rename(root / os.fsdecode(b"caf\xe9.jpg"))
    (root / CORRUPT).write_bytes(b"not a JPEG at all" * 10)
    (root / EMPTY).write_bytes(b"")
    return root


def _contents(store: Store) -> tuple[list[ImageRecord], dict[int, np.ndarray]]:
    records = list(store.iter_records(None))
    vectors = {r.id: v for r in records if (v := store.vector(r.id)) is not None}
    return records, vectors


def test_ray_builds_the_index_the_local_executor_builds(
    ray_runner: RayRunner, folder: Path, tmp_path: Path
) -> None:
    with Index.create(tmp_path / "local") as local:
        local_report = local.add([folder], runner=LocalRunner(), batch_size=3)
        local_records, local_vectors = _contents(local.store)
        local_classes = local.store.class_table()
        local_features = local.store.local_features(list(local_vectors))
    with Index.create(tmp_path / "ray") as index:
        report = index.add([folder], runner=ray_runner, batch_size=3)  # 4 batches, 2 actors
        records, vectors = _contents(index.store)
        classes = index.store.class_table()
        features = index.store.local_features(list(vectors))

    assert report == local_report
    assert report.added == 8
    assert sorted(report.skipped) == sorted(local_report.skipped)
    reasons = dict(report.skipped)
    assert set(reasons) == {str(folder / CORRUPT), str(folder / EMPTY)}
    assert "empty" in reasons[str(folder / EMPTY)]
    # same files, same ids (committed in the same order), same metadata and reasons
    assert records == local_records
    by_name = {Path(r.path).name: r for r in records}
    assert by_name[os.fsdecode(b"caf\xe9.jpg")].status == "ok"  # a name Arrow cannot hold
    assert vectors.keys() == local_vectors.keys()
    for image_id, vector in vectors.items():
        np.testing.assert_allclose(vector, local_vectors[image_id], atol=1e-5)
    np.testing.assert_array_equal(classes.classes, local_classes.classes)
    np.testing.assert_allclose(classes.probs, local_classes.probs, atol=1e-3)
    assert features.keys() == local_features.keys() and features
    for image_id, found in features.items():
        expected = local_features[image_id]
        np.testing.assert_allclose(found.descriptors, expected.descriptors, atol=1e-2)


def test_a_model_error_in_an_actor_is_raised_here_as_itself(
    ray_runner: RayRunner, folder: Path
) -> None:
    files = [FileEntry(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()]
    spec = EmbedderSpec("seed_cnn", runtime="torch", model_id="another-vector-space")
    with pytest.raises(ModelMismatchError, match="another-vector-space") as caught:
        list(ray_runner.map(files, Mapper(spec), batch_size=4))
    assert "\n" not in str(caught.value)


def test_a_bug_in_an_actor_is_one_line(ray_runner: RayRunner, folder: Path) -> None:
    files = [FileEntry(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()]
    broken = EmbedderSpec(123)  # type: ignore[arg-type]  # what a bug in the spec would send
    with pytest.raises(ExecutorError) as caught:
        list(ray_runner.map(files, Mapper(broken), batch_size=4))
    message = str(caught.value)
    assert message == "Ray failed: AttributeError: 'int' object has no attribute 'startswith'"


def test_results_are_put_back_in_input_order() -> None:
    made = [FileEntry(f"/photos/{i}.jpg", i, i) for i in range(7)]
    results = [EmbeddedFile(e, None, None, "not an image") for e in made]

    def batch(seqs: list[int]) -> dict[str, np.ndarray]:
        payload = np.empty(len(seqs), dtype=object)
        payload[:] = [pickle.dumps(results[s]) for s in seqs]
        return {"seq": np.array(seqs), "result": payload}

    arrived = [batch([3, 4, 5]), batch([0, 1, 2]), batch([6])]  # as actors finish
    batches = list(_in_order(iter(arrived), 2))
    assert [len(b) for b in batches] == [2, 2, 2, 1]
    assert [r.entry.path for b in batches for r in b] == [e.path for e in made]


def test_cli_indexes_on_a_running_cluster(
    ray_runner: RayRunner,
    folder: Path,
    tmp_path: Path,
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    import ray

    address = ray.get_runtime_context().gcs_address  # the module's Ray, as a cluster
    index = str(tmp_path / "index")
    ray_run = run_cli(
        "index", str(folder), "--index", index, "--executor", "ray",
        "--ray-address", address, "--actors", "1", "--batch-size", "4", check=True,
    )  # fmt: skip
    assert "added 8, updated 0, removed 0, unchanged 0, skipped 2" in ray_run.stdout
    assert f"skipped {folder / EMPTY}: empty file (0 bytes)" in ray_run.stdout
    assert "Traceback" not in ray_run.stderr
    assert ray.is_initialized()  # a client leaving does not stop the cluster
    with Index.open(index) as opened:
        assert len(opened) == 8
        assert sorted(opened.skipped()) == sorted(
            (str(folder / name), reason)
            for name, reason in [
                (CORRUPT, "not an image, or a format this build cannot read"),
                (EMPTY, "empty file (0 bytes)"),
            ]
        )


def test_nothing_to_embed_starts_no_ray(built_index: Path, photo_library: Path) -> None:
    runner = RayRunner()
    with Index.open(built_index) as index, runner:
        report = index.add([photo_library], runner=runner)
    assert report.unchanged == 8 and report.added == 0
    assert runner.startup_s is None


def test_an_unreachable_cluster_is_one_line(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], folder: Path, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it once closed
    result = run_cli(
        "index", str(folder), "--index", str(tmp_path / "i"),
        "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"lookalike: error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused"
    ]


def test_the_local_executor_imports_no_ray(folder: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from lookalike.present.cli import main; "
        f"code = main(['index', {str(folder)!r}, '--index', {str(tmp_path / 'i')!r}, '-q']); "
        "assert code == 0, code; assert 'ray' not in sys.modules, 'ray was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_without_ray_the_executor_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what an environment without Ray finds
        "from lookalike.errors import ExecutorError\n"
        "from lookalike.pipeline import open_runner\n"
        "try:\n    open_runner('ray').__enter__()\n    print('no error')\n"
        "except ExecutorError as exc:\n    print(exc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (
        out.stdout.strip() == "--executor ray needs Ray: pip install 'lookalike[ray]' (ray[data])"
    )
