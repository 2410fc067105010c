"""The product's own store at scale: ``search_scale.py --store DIR`` runs this for each N.

Writes N records through ``Index``'s store (the paths are hard links to one small JPEG, made
under ``DIR/files``, so that ``lookalike index`` can walk and stat them like real files), with
the grown vectors of ``search_scale.py``, then measures:

- the first build of the vector index (at the end of the writing run) and its kind;
- one query in process (vector given) on one thread: p50 / p99, queries/s of a batch of 1,000
  on 1 and 2 threads, recall@10 of the held-out real queries against exact search;
- a searching process's peak resident memory (a fresh interpreter, 300 queries);
- adding 1,000 records, removing 1,000, and one merge of the delta into the base (store work
  only: the vectors are given), and the peak memory of a fresh process that adds 1,000 or
  merges, against a searching one's;
- ``lookalike search one.jpg``, ``lookalike info`` and an unchanged ``lookalike index`` as whole
  commands, with their peak memory: the first search cold (after dropping the page cache when
  this process may, else said), then warm;
- bytes per image on disk (catalogue, base) and the load average.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

from lookalike import Index
from lookalike.embed.classes import TopClasses
from lookalike.store.catalogue import Upsert
from lookalike.store.local import LocalStore

K = 10
BATCH = 10_000
LINKS_PER_FILE = 50_000
# Every record gets classes, as indexing gives them: else an unchanged run would classify all.
CLASSES = TopClasses(np.arange(10, dtype=np.uint16), np.full(10, 0.1, np.float16))


def build_store(
    directory: Path, base: np.ndarray, compact: bool
) -> tuple[LocalStore, list[Path], float]:
    """An index at ``directory / "index"`` holding ``base``; (store, file paths, build s)."""
    files = directory / "files"
    shutil.rmtree(directory, ignore_errors=True)
    files.mkdir(parents=True)
    one = files / "one.jpg"
    paths, stats = [], []
    for i in range(len(base)):
        if i % LINKS_PER_FILE == 0:  # a file system allows so many links to one file
            Image.new("RGB", (64, 48), (200, 120, 40)).save(one, quality=90)
            stat = one.stat()
        folder = files / f"{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir()
        path = folder / f"{i}.jpg"
        os.link(one, path)
        paths.append(path)
        stats.append(stat)
        if i % LINKS_PER_FILE == LINKS_PER_FILE - 1 or i == len(base) - 1:
            one.unlink()
    index = Index.create(directory / "index", compact=compact)
    store = index.store
    assert isinstance(store, LocalStore)
    started = time.perf_counter()
    with store.writing():
        for start in range(0, len(base), BATCH):
            store.write(
                Upsert(
                    str(paths[i]), stats[i].st_size, stats[i].st_mtime_ns, base[i], classes=CLASSES
                )
                for i in range(start, min(len(base), start + BATCH))
            )
        written = time.perf_counter()
    build_s = time.perf_counter() - written
    print(f"  wrote {len(base)} records in {written - started:.0f} s, built in {build_s:.0f} s")
    return store, paths, build_s


def in_process(store: LocalStore, queries: np.ndarray, truth: np.ndarray) -> dict[str, object]:
    fresh = LocalStore.open(store.directory)
    started = time.perf_counter()
    fresh.search(queries[:1], K)
    first_ms = (time.perf_counter() - started) * 1000
    faiss.omp_set_num_threads(1)
    latencies = []
    found = np.full((len(queries), K), -1, np.int64)
    for row, q in enumerate(queries):
        t = time.perf_counter()
        ranking = fresh.search(q[None], K)[0]
        latencies.append((time.perf_counter() - t) * 1000)
        found[row, : len(ranking)] = [r.id - 1 for r, _ in ranking]  # ids count from 1
    rates = {}
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        t = time.perf_counter()
        fresh.search(queries, K)
        rates[threads] = len(queries) / (time.perf_counter() - t)
    recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)])
    fresh.close()
    return {
        "first_query_ms": round(first_ms, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "qps_1_thread": round(rates[1], 1),
        "qps_2_threads": round(rates[2], 1),
        "recall_at_10": round(float(recall), 4),
    }


PEAK = (
    "import atexit, sys\n"
    "atexit.register(lambda: print(next(l for l in open('/proc/self/status') "
    "if l.startswith('VmHWM')).split()[1], file=sys.stderr))\n"
)  # VmHWM, not ru_maxrss: Linux keeps a forked child's ru_maxrss of its parent


def peak_mb(code: str) -> tuple[float, float]:
    """(seconds, peak resident MB) of ``code`` run in a fresh interpreter."""
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK + code], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - t
    return round(seconds, 2), round(int(done.stderr.split()[-1]) / 1024, 1)


def searching_rss_mb(directory: Path, queries: np.ndarray) -> float:
    """Peak resident MB of a fresh process that opens the store and runs 300 queries."""
    np.save(directory / "queries.npy", queries[:300])
    _, peak = peak_mb(
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from lookalike.store.local import LocalStore\n"
        f"store = LocalStore.open(Path({str(directory / 'index')!r}))\n"
        f"for q in np.load({str(directory / 'queries.npy')!r}): store.search(q[None], 10)\n"
    )
    return peak


def updates(store: LocalStore, paths: list[Path], grown: np.ndarray) -> dict[str, object]:
    """Store seconds to add 1,000, remove 1,000, and to merge a delta of DELTA_LIMIT."""
    from lookalike.store import vectors

    stat = paths[0].stat()

    def add(count: int, tag: str) -> float:
        t = time.perf_counter()
        with store.writing():
            store.write(
                Upsert(f"/bench/{tag}/{i}.jpg", stat.st_size, stat.st_mtime_ns, grown[i])
                for i in range(count)
            )
        return time.perf_counter() - t

    added = add(1000, "add")
    t = time.perf_counter()
    with store.writing():
        store.write([], removals=[str(p) for p in paths[-1000:]])
    removed = time.perf_counter() - t
    merged = add(vectors.DELTA_LIMIT, "merge")
    t = time.perf_counter()
    with store.writing():  # back to the files on disk, for the unchanged re-run
        store.write(
            [],
            removals=[
                f"/bench/{tag}/{i}.jpg"
                for tag, n in (("add", 1000), ("merge", vectors.DELTA_LIMIT))
                for i in range(n)
            ],
        )
        store.write(
            Upsert(str(p), p.stat().st_size, p.stat().st_mtime_ns, grown[i], classes=CLASSES)
            for i, p in enumerate(paths[-1000:])
        )
    restored = time.perf_counter() - t
    return {
        "add_1000_s": round(added, 2),
        "remove_1000_s": round(removed, 2),
        f"merge_{vectors.DELTA_LIMIT}_s": round(merged, 1),
        "restore_s": round(restored, 1),
    }


def update_peaks_mb(directory: Path, grown: np.ndarray, stat: os.stat_result) -> dict[str, object]:
    """Peak resident MB of a fresh process that adds 1,000 records, and of one that adds
    DELTA_LIMIT (so that the delta is merged into a new base); both are removed again."""
    from lookalike.store import vectors

    np.save(directory / "grown.npy", grown[: vectors.DELTA_LIMIT])
    out: dict[str, object] = {}
    for name, count in (("add_1000_peak_mb", 1000), ("merge_peak_mb", vectors.DELTA_LIMIT)):
        _, out[name] = peak_mb(
            "import numpy as np\n"
            "from pathlib import Path\n"
            "from lookalike.store.catalogue import Upsert\n"
            "from lookalike.store.local import LocalStore\n"
            f"store = LocalStore.open(Path({str(directory / 'index')!r}))\n"
            f"grown = np.load({str(directory / 'grown.npy')!r})\n"
            "with store.writing():\n"
            f"    store.write(Upsert(f'/peak/{{i}}.jpg', {stat.st_size}, {stat.st_mtime_ns}, "
            f"grown[i]) for i in range({count}))\n"
        )
        store = LocalStore.open(directory / "index")
        with store.writing():
            store.write([], removals=[f"/peak/{i}.jpg" for i in range(count)])
        store.close()
    return out


def command(*args: str) -> tuple[float, float]:
    """(seconds, peak resident MB) of one ``lookalike`` command in a fresh interpreter."""
    return peak_mb(
        f"from lookalike.present.cli import main\nraise SystemExit(main({list(args)!r}))\n"
    )


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def whole_commands(directory: Path, query: Path) -> dict[str, object]:
    index = str(directory / "index")
    out: dict[str, object] = {"cold_is_cold": drop_page_cache()}
    out["search_cold_s"], out["search_cold_mb"] = command("search", "--index", index, str(query))
    warm = [command("search", "--index", index, str(query)) for _ in range(3)]
    out["search_warm_s"] = min(s for s, _ in warm)
    out["info_s"], _ = command("info", "--index", index)
    out["unchanged_index_s"], out["unchanged_index_mb"] = command(
        "index", "--index", index, "--quiet", str(directory / "files")
    )
    return out


def disk(directory: Path) -> dict[str, object]:
    index = directory / "index"
    catalogue = sum(p.stat().st_size for p in index.glob("catalogue.sqlite*"))
    bases = sum(p.stat().st_size for p in index.glob("vectors-*.faiss"))
    with sqlite3.connect(index / "catalogue.sqlite") as conn:  # the vectors table's pages
        vector_pages = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN ('vectors', 'vectors_generation')"
        ).fetchone()[0]
    return {"catalogue_bytes": catalogue, "base_bytes": bases, "vector_table_bytes": vector_pages}


def measure_store(
    directory: Path,
    base: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    query: Path,
    compact: bool = False,
) -> dict[str, object]:
    """One JSON row for the product's store at ``len(base)`` images."""
    store, paths, build_s = build_store(directory, base, compact)
    kind = "store-compact" if compact else "store"
    row: dict[str, object] = {"kind": kind, "n": len(base), "build_s": round(build_s, 1)}
    info = store.info()
    row["vector_index"] = info.vector_index
    row["build_recall_at_10"] = info.recall_at_10
    row.update(in_process(store, queries, truth))
    row["searching_rss_mb"] = searching_rss_mb(directory, queries)
    sizes = disk(directory)
    row["bytes_per_vector"] = round(sizes["base_bytes"] / len(base), 1)  # type: ignore[operator]
    row["catalogue_bytes_per_image"] = round(sizes["catalogue_bytes"] / len(base), 1)  # type: ignore[operator]
    row["vector_table_bytes_per_image"] = round(sizes["vector_table_bytes"] / len(base), 1)  # type: ignore[operator]
    row.update(updates(store, paths, base[::-1].copy()))
    store.close()
    row.update(update_peaks_mb(directory, base[::-1].copy(), paths[0].stat()))
    row.update(whole_commands(directory, query))
    row["load"] = round(os.getloadavg()[0], 2)
    print(json.dumps(row))
    return row
