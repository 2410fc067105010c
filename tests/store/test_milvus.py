"""The Milvus store against a real Milvus server (tests/store/conftest.py starts it).

Client code runs inside the server's network namespace: the store's own calls as Python code
(``milvus_server.python``), the user's as the real CLI. Vectors here are small unit vectors, as
in test_store.py; the CLI tests embed real photos.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
from milvus_harness import MilvusServer
from PIL import Image

from lookalike.errors import LookalikeError
from lookalike.search.filters import Filters, milvus_expression
from lookalike.store import local_only, side_folder
from lookalike.store.milvus import MilvusLocation, stable_id

PRELUDE = """
import json, sys
import numpy as np
from lookalike.decode.image import ImageMeta
from lookalike.store import create_store, open_store
from lookalike.store.milvus import stable_id
from lookalike.store.catalogue import Upsert
from lookalike.search.filters import Filters
from lookalike.embed.classes import TopClasses
DIM = 8
url = sys.argv[1]

def unit(seed):
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)

def upsert(path, seed, width=10, height=20, taken_at=None, mtime=1):
    meta = ImageMeta(width=width, height=height, format="JPEG", taken_at=taken_at)
    return Upsert(path, 100, mtime, unit(seed), meta=meta)
"""


def test_create_write_update_remove_search_and_reopen(
    milvus_server: MilvusServer, collection: str
) -> None:
    answer = milvus_server.python(
        PRELUDE
        + """
store = create_store(url, "mobilenet_v2", "test-model-v1", DIM)
with store.writing():
    g1 = store.write([upsert("/p/a.jpg", 1), upsert("/p/b.jpg", 2), upsert("/p/c.jpg", 3)])
    g2 = store.write([Upsert("/p/bad.jpg", 5, 1, None, reason="cannot decode")])
    g3 = store.write([upsert("/p/a.jpg", 4, mtime=2)], removals=["/p/c.jpg"])
top = store.search(np.stack([unit(4), unit(2)]), 2)
store.close()
again = open_store(url)
print(json.dumps({
    "generations": [g1, g2, g3, again.generation()],
    "count": again.count(),
    "stat": {p: list(v[1:]) for p, v in again.stat_map().items()},
    "skipped": [(r.path, r.reason) for r in again.iter_records("skipped")],
    "top": [[(r.path, round(s, 4)) for r, s in ranking] for ranking in top],
    "a_vector": again.vector(again.record_by_path("/p/a.jpg").id).tolist(),
    "vectors_of": {
        again.record(i).path: round(float(v @ (unit(4) + 2 * unit(2))), 4)
        for i, v in again.vectors_of(
            [stable_id(p) for p in ("/p/a.jpg", "/p/b.jpg", "/p/c.jpg", "/p/bad.jpg")] + [7]
        ).items()
    },
    "model": [again.model_name, again.model_id, again.dim],
    "info": [again.info().kind, again.info().images, again.info().skipped],
}))
""",
        milvus_server.url(collection),
    )
    assert isinstance(answer, dict)
    assert answer["generations"] == [1, 2, 3, 3]
    assert answer["count"] == 2
    assert answer["stat"] == {"/p/a.jpg": [100, 2], "/p/b.jpg": [100, 1], "/p/bad.jpg": [5, 1]}
    assert answer["skipped"] == [["/p/bad.jpg", "cannot decode"]]
    # the updated a.jpg is found by its new vector, with cosine 1; the removed c.jpg never
    assert answer["top"][0][0] == ["/p/a.jpg", 1.0]
    assert answer["top"][1][0] == ["/p/b.jpg", 1.0]
    assert all(path != "/p/c.jpg" for ranking in answer["top"] for path, _ in ranking)
    assert answer["model"] == ["mobilenet_v2", "test-model-v1", 8]
    assert answer["info"] == ["milvus", 2, 1]
    # one lookup: the two stored vectors, not the removed c.jpg's, the skipped file's or none
    assert answer["vectors_of"] == {"/p/a.jpg": -0.1179, "/p/b.jpg": 1.4411}


def test_filters_are_pushed_down_and_agree_with_their_meaning(
    milvus_server: MilvusServer, collection: str
) -> None:
    """Each filter, searched in Milvus, keeps exactly the images ``Filters.accepts`` keeps."""
    answer = milvus_server.python(
        PRELUDE
        + """
from datetime import date
store = create_store(url, "mobilenet_v2", "test-model-v1", DIM)
files = [
    ("/lib/trip/a.jpg", 100, 50, "2021-05-01T10:00:00"),
    ("/lib/trip/sub/b.jpg", 2000, 1500, "2022-01-02T00:00:00"),
    ("/lib/trip0/c.jpg", 2000, 1500, "2022-06-30T23:59:59"),  # not under /lib/trip
    ('/lib/trip/it\\'s "quoted" \\\\ é.jpg', 3000, 2000, None),
    ("/lib/other/d.jpg", 640, 480, "2023-03-03T12:00:00"),
]
with store.writing():
    store.write([upsert(p, n, w, h, t) for n, (p, w, h, t) in enumerate(files)])
everything = {r.path: r for r in store.iter_records("ok")}
ids = frozenset([everything["/lib/other/d.jpg"].id, everything["/lib/trip0/c.jpg"].id])
cases = [
    Filters(folder="/lib/trip"),
    Filters(folder="/lib/trip/"),
    Filters(min_width=1000, min_height=1000),
    Filters(taken_after=date(2022, 1, 2)),
    Filters(taken_before=date(2022, 6, 30)),
    Filters(folder="/lib", taken_after=date(2021, 1, 1), taken_before=date(2022, 12, 31)),
    Filters(ids=ids),
    Filters(ids=frozenset()),
]
out = []
for f in cases:
    found = sorted(r.path for r, _ in store.search(unit(0)[None], 10, f)[0])
    meant = sorted(p for p, r in everything.items() if f.accepts(r))
    out.append([found, meant])
print(json.dumps(out))
""",
        milvus_server.url(collection),
    )
    assert isinstance(answer, list) and len(answer) == 8
    for found, meant in answer:
        assert found == meant
    assert answer[0][0] == sorted(
        ["/lib/trip/a.jpg", "/lib/trip/sub/b.jpg", '/lib/trip/it\'s "quoted" \\ é.jpg']
    )
    assert answer[7][0] == []


def test_classes_verdicts_and_recall_are_kept_and_removal_drops_them(
    milvus_server: MilvusServer, collection: str
) -> None:
    answer = milvus_server.python(
        PRELUDE
        + """
store = create_store(url, "mobilenet_v2", "test-model-v1", DIM, )
top = TopClasses(np.array([3, 7], np.uint16), np.array([0.75, 0.25], np.float32))
with store.writing():
    store.write([upsert(f"/c/{n}.jpg", n) for n in range(30)])
    store.write_classes([("/c/1.jpg", top)])
    a, b, c = (store.record_by_path(f"/c/{n}.jpg").id for n in range(3))
    store.add_not_duplicates([a, b, c])
    before = sorted(store.not_duplicate_pairs())
    store.write([], removals=["/c/2.jpg"])
table = store.class_table()
recall = store.measure_recall(10)
print(json.dumps({
    "pairs_before": len(before),
    "pairs_after": sorted(store.not_duplicate_pairs()) == [tuple(sorted((a, b)))],
    "table": [table.ids.tolist(), table.classes.tolist(), table.probs.tolist()],
    "table_id": store.record_by_path("/c/1.jpg").id,
    "unclassified": len(store.unclassified_paths()),
    "vectors": list(store.all_vectors().shape),
    "recall": [recall, store.info().recall_at_10],
}))
""",
        milvus_server.url(collection, "index=FLAT"),
    )
    assert isinstance(answer, dict)
    assert answer["pairs_before"] == 3 and answer["pairs_after"] is True
    assert answer["table"] == [[answer["table_id"]], [[3, 7]], [[0.75, 0.25]]]
    assert answer["unclassified"] == 28 and answer["vectors"] == [29, 8]
    assert answer["recall"] == [1.0, 1.0]  # a FLAT index is exact


def test_mismatches_and_what_a_milvus_index_cannot_do_are_one_line_errors(
    milvus_server: MilvusServer, collection: str
) -> None:
    answer = milvus_server.python(
        PRELUDE
        + """
from lookalike import Index
from lookalike.errors import LookalikeError
from lookalike.store.whitening import learn_whitening
errors = []
def fails(call):
    try:
        call()
    except LookalikeError as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    else:
        errors.append("no error")
fails(lambda: open_store(url))
store = create_store(url, "mobilenet_v2", "test-model-v1", DIM)
fails(lambda: create_store(url, "mobilenet_v2", "test-model-v1", DIM))
fails(lambda: Index.open(url, model="efficientnet_lite0"))
fails(lambda: open_store(url.replace("?index=HNSW", "") + "?index=IVF_FLAT"))
with store.writing():
    store.write([upsert(f"/w/{n}.jpg", n) for n in range(3)])
    fails(lambda: store.set_whitening(learn_whitening(store.all_vectors(), 2)))
print(json.dumps(errors))
""",
        milvus_server.url(collection, "index=HNSW"),
    )
    assert isinstance(answer, list)
    assert answer[0].startswith("IndexNotFoundError: no index at milvus://127.0.0.1")
    assert "already exists" in answer[1]
    assert answer[2].startswith("ModelMismatchError: ") and "'mobilenet_v2'" in answer[2]
    assert "has a HNSW vector index" in answer[3]
    assert "whitening is for an embedded index" in answer[4]
    assert all("\n" not in line for line in answer)


WRITER = (
    PRELUDE
    + """
store = open_store(url)
first, last = int(sys.argv[2]), int(sys.argv[3])
with store.writing():
    for start in range(first, last, 5):
        store.write([upsert(f"/shared/{n}.jpg", n) for n in range(start, min(start + 5, last))])
print(json.dumps(store.generation()))
"""
)


def test_two_writers_at_once_lose_nothing_and_leave_one_record_a_file(
    milvus_server: MilvusServer, collection: str
) -> None:
    """Two processes write overlapping files in interleaved batches: every file is there once,
    and the generation counts both writers' writes."""
    url = milvus_server.url(collection)
    milvus_server.python(PRELUDE + "create_store(url, 'm', 'm-v1', DIM); print(1)", url)
    outcomes: list[object] = []

    def writer(first: int, last: int) -> None:
        outcomes.append(milvus_server.python(WRITER, url, str(first), str(last)))

    threads = [threading.Thread(target=writer, args=span) for span in ((0, 60), (30, 90))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answer = milvus_server.python(
        PRELUDE
        + """
store = open_store(url)
paths = [r.path for r in store.iter_records()]
print(json.dumps([len(paths), len(set(paths)), store.count(), store.generation()]))
""",
        url,
    )
    assert len(outcomes) == 2
    assert answer == [90, 90, 90, 24]  # 12 writes each


def test_a_path_whose_id_another_path_holds_is_left_out_with_a_warning(
    milvus_server: MilvusServer, collection: str
) -> None:
    """Two paths whose hashes agree (forced here: a real one is a 1-in-2**53 event) do not
    share a row: the file indexed first keeps it, the other is left out and said so."""
    answer = milvus_server.python(
        PRELUDE
        + """
import warnings
import lookalike.store.milvus as milvus
real_id = milvus.stable_id
milvus.stable_id = lambda path: real_id("/p/a.jpg" if path == "/p/z.jpg" else path)
store = create_store(url, "m", "m-v1", DIM)
with warnings.catch_warnings(record=True) as caught, store.writing():
    warnings.simplefilter("always")
    store.write([upsert("/p/a.jpg", 1), upsert("/p/b.jpg", 2)])
    store.write([upsert("/p/z.jpg", 3), upsert("/p/c.jpg", 4)])
    store.write([upsert("/p/a.jpg", 5, mtime=2)])  # its own file: an update, no warning
print(json.dumps({
    "stat": {p: list(v[1:]) for p, v in store.stat_map().items()},
    "warnings": [str(w.message) for w in caught],
    "a_is_new": float(store.vector(real_id("/p/a.jpg")) @ unit(5)),
}))
""",
        milvus_server.url(collection),
    )
    assert isinstance(answer, dict)
    assert answer["stat"] == {"/p/a.jpg": [100, 2], "/p/b.jpg": [100, 1], "/p/c.jpg": [100, 1]}
    assert answer["warnings"] == [
        "/p/z.jpg is not indexed: its id in the collection is that of /p/a.jpg (a hash collision)"
    ]
    assert answer["a_is_new"] == pytest.approx(1.0, abs=1e-5)


def test_a_server_that_goes_away_is_a_clear_error_and_a_rerun_completes(
    milvus_server: MilvusServer, collection: str
) -> None:
    """The server is killed between two batches of a writer: the write fails in one line,
    what was committed is whole, and the same run again after a restart completes it."""
    url = milvus_server.url(collection, "timeout=5")
    code = (
        PRELUDE
        + """
from lookalike.errors import StoreError
store = create_store(url, "m", "m-v1", DIM) if sys.argv[2] == "create" else open_store(url)
with store.writing():
    store.write([upsert(f"/g/{n}.jpg", n) for n in range(10)])
    print("first batch written", flush=True)
    sys.stdin.readline()  # the test stops the server here
    try:
        store.write([upsert(f"/g/{n}.jpg", n) for n in range(10, 20)])
        print(json.dumps(["written", store.count()]))
    except StoreError as exc:
        print(json.dumps(["error", str(exc)]))
"""
    )
    writer = subprocess.Popen(
        ["ip", "netns", "exec", milvus_server.namespace, sys.executable, "-c", code, url, "create"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=milvus_server.client_environment(),
    )
    assert writer.stdout is not None and writer.stdin is not None
    assert writer.stdout.readline() == "first batch written\n"
    milvus_server.stop()
    try:
        out, err = writer.communicate("\n", timeout=120)
        # and the CLI, while the server is down, says so in one line
        cli = [sys.executable, "-m", "lookalike.present.cli", "info", "--index"]
        down = milvus_server.run(*cli, milvus_server.url(collection, "timeout=3"))
    finally:
        milvus_server.start()
    kind, message = json.loads(out.strip().splitlines()[-1])
    assert kind == "error", err
    assert message.startswith("Milvus at milvus://127.0.0.1:19530/") and "\n" not in message
    assert down.returncode == 1
    assert down.stderr.startswith("lookalike: error: cannot reach Milvus at 127.0.0.1:19530")
    assert len(down.stderr.strip().splitlines()) == 1
    rerun = milvus_server.run(sys.executable, "-c", code, url, "open", stdin="\n")
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip().splitlines()[-1] == '["written", 20]'


def test_the_cli_and_the_web_app_index_search_and_find_dupes_in_milvus(
    milvus_server: MilvusServer, collection: str, photos: Path
) -> None:
    """index (incremental, with its report), search, info, dupes and the refusals, through the
    real entry point, as a user runs them; then the web app over the same collection."""
    url = milvus_server.url(collection)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    env_cli = [sys.executable, "-m", "lookalike.present.cli"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return milvus_server.run(*env_cli, *args)

    first = cli("index", str(photos), "--index", url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("added 8, updated 0, removed 0, unchanged 0, skipped 1")
    shutil.copy(photos / "coffee.jpg", photos / "coffee-copy.jpg")
    Image.open(photos / "camera.jpg").rotate(180).save(photos / "camera.jpg", quality=90)
    (photos / "moon.jpg").unlink()
    second = cli("index", str(photos), "--index", url)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("added 1, updated 1, removed 1, unchanged 7, skipped 0"), (
        second.stdout
    )
    found = cli("search", "--index", url, "-k", "2", "--json", str(photos / "rocket.jpg"))
    assert found.returncode == 0, found.stderr
    assert '"rocket.jpg"' in found.stdout or "/rocket.jpg" in found.stdout
    info = cli("info", "--index", url)
    assert "milvus" in info.stdout and "images    8" in info.stdout, info.stdout
    dupes = cli("dupes", "--index", url, "--json")
    assert dupes.returncode == 0, dupes.stderr
    assert "coffee-copy.jpg" in dupes.stdout and "coffee.jpg" in dupes.stdout
    mismatch = cli("search", "--index", url, "--model", "mobilenet_v2", str(photos))
    assert (
        mismatch.returncode == 1 and "made with model 'efficientnet_lite0_gem'" in mismatch.stderr
    )
    check = cli("check", "--index", url)
    assert check.returncode == 1 and "works on an embedded index directory" in check.stderr
    web = milvus_server.python(
        """
import json, sys
from fastapi.testclient import TestClient
from lookalike.present.web.app import create_app
from lookalike.present.web.service import ServerConfig
with TestClient(create_app(ServerConfig(sys.argv[1])), base_url="http://127.0.0.1") as client:
    stats = client.get("/api/stats").json()
    first = client.get("/api/images", params={"limit": 1}).json()["items"][0]
    similar = client.get(f"/api/images/{first['id']}/similar", params={"k": 3})
    thumbnail = client.get(f"/api/images/{first['id']}/thumbnail")
hits = [h["id"] for h in similar.json()["results"]]
print(json.dumps([stats["index"]["images"], first["id"], hits, thumbnail.status_code,
                  thumbnail.headers["content-type"]]))
""",
        url,
    )
    assert isinstance(web, list)
    images, first_id, similar_ids, status, kind = web
    # coffee-copy.jpg is byte-identical to coffee.jpg: when the first image is one of the two,
    # both score 1.0 and either may come first.
    assert images == 8 and first_id in similar_ids[:2] and (status, kind) == (200, "image/jpeg")


# Without a server: the location, the expression and the ids.


def test_a_location_parses_with_its_settings_and_refuses_bad_ones() -> None:
    where = MilvusLocation.parse("milvus://db.example:19531/photos?index=ivf_flat&nlist=256")
    assert (where.host, where.port, where.collection) == ("db.example", 19531, "photos")
    assert where.index_params("IVF_FLAT") == ({"nlist": 256}, {"nprobe": 16})
    assert where.url == "milvus://db.example:19531/photos"
    assert MilvusLocation.parse("milvus://h/c").port == 19530
    default = MilvusLocation.parse("milvus://h/c?ef=128&timeout=2")
    assert default.index_params("HNSW") == ({"M": 16, "efConstruction": 200}, {"ef": 128})
    assert (default.timeout_s, default.consistency) == (2, "Strong")
    assert MilvusLocation.parse("milvus://h/c?consistency=session").consistency == "Session"
    for bad, why in [
        ("milvus://h:1/", "milvus://HOST:PORT/COLLECTION"),
        ("milvus://h:1/9x", "not a digit first"),
        ("milvus://h:1/a-b", "letters, digits and underscores"),
        ("milvus://h:x/c", "port is not a number"),
        ("milvus://h/c?index=ANNOY", "not one of"),
        ("milvus://h/c?nlist=many", "take whole numbers"),
        ("milvus://h/c?timeout=0", "at least 1"),
        ("milvus://h/c?consistency=eventually", "not one of Strong, Session"),
        ("milvus://h/c?colour=1", "unknown setting(s) colour"),
    ]:
        with pytest.raises(LookalikeError, match=why.replace("(", r"\(").replace(")", r"\)")):
            MilvusLocation.parse(bad)


def test_the_expression_of_filters_names_its_columns_and_escapes_paths() -> None:
    assert milvus_expression(Filters()) == 'status == "ok"'
    expression = milvus_expression(
        Filters(folder='/a/"b"', min_width=5, taken_after=date(2020, 1, 2), ids=frozenset({3, 1}))
    )
    assert expression == (
        'status == "ok" and (path == "/a/\\"b\\"" or (path >= "/a/\\"b\\"/" and '
        'path < "/a/\\"b\\"0")) and width >= 5 and taken_day != "" and '
        'taken_day >= "2020-01-02" and id in [1, 3]'
    )


def test_ids_are_stable_53_bit_hashes_of_the_path() -> None:
    ids = {stable_id(f"/photos/{n}.jpg") for n in range(10_000)}
    assert len(ids) == 10_000 and all(0 <= i < 2**53 for i in ids)
    assert stable_id("/photos/1.jpg") == stable_id("/photos/1.jpg")


def test_the_directory_case_never_imports_pymilvus() -> None:
    """A directory index pays nothing for the Milvus store: pymilvus loads with a URL only."""
    code = "import sys, lookalike.present.cli; print('pymilvus' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_directory_only_commands_refuse_a_milvus_location(tmp_path: Path) -> None:
    with pytest.raises(LookalikeError, match="works on an embedded index directory"):
        local_only("milvus://h:1/c", "backup")
    assert local_only(str(tmp_path), "backup") == tmp_path
    assert side_folder("milvus://h:1/c").name == "h-1-c"
    assert side_folder(str(tmp_path)) == tmp_path
