"""Search by words on real photographs whose content is an ImageNet class: the words find the
photo first, filters apply, nonsense scores low without an error, and an index made before
classes were stored gains them on the next run without its vectors being rewritten."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from lookalike import Index
from lookalike.errors import LookalikeError
from lookalike.search.classes import match_text
from lookalike.search.filters import Filters
from lookalike.search.query import TextQuery
from lookalike.search.text import TextSearchUnavailableError

# (words, the photo they name): scikit-image's cat, espresso, cameraman's tripod and astronaut's
# helmet (classified "football helmet"). Not the rocket: int8 kernels round differently by
# CPU, and on AVX2 without VNNI "missile" leaves its top 10 (drilling platform, crane).
NAMED = [
    ("cat", "chelsea.jpg"),
    ("a cup of espresso", "coffee.jpg"),
    ("tripod", "camera.jpg"),
    ("helmet", "astronaut.jpg"),
]


def test_words_match_names_kinds_and_plurals() -> None:
    cats = match_text("cats on a sofa")
    hows = {(m.name, m.how) for m in cats.matches}
    assert ("tabby cat", "a kind of cat") in hows and ("couch", "a kind of sofa") in hows
    assert cats.ignored == ()
    assert {m.how for m in match_text("espresso").matches} == {"name"}
    dog_and_ball = {m.words for m in match_text("dog and ball").matches}
    assert dog_and_ball == {"dog", "ball"}
    assert len([m for m in match_text("dog").matches]) == 118  # every breed of the 1000


def test_colours_and_nonsense_are_said_not_guessed() -> None:
    red_car = match_text("red car")
    assert red_car.ignored == ("red",) and {m.words for m in red_car.matches} == {"car"}
    nonsense = match_text("xqzv blorp")
    assert nonsense.matches == () and nonsense.ignored == ("xqzv blorp",)
    assert "not understood" in nonsense.describe()[-1]


def test_sentence_encoder_weighs_near_names() -> None:
    kitten = match_text("kitten")  # no class or concept is named so
    assert kitten.matches and all(m.how.startswith("similar") for m in kitten.matches)
    assert kitten.matches[0].name == "tiger cat" and 0 < kitten.matches[0].weight < 1


@pytest.mark.parametrize(("words", "photo"), NAMED)
def test_each_text_finds_its_photo_first(built_index: Path, words: str, photo: str) -> None:
    with Index.open(built_index) as index:
        hits = index.search(text=words, k=3)
    assert Path(hits[0].path).name == photo, hits
    assert hits[0].score > 5 * max(hits[1].score, 0.001)


def test_several_texts_in_one_call_and_combined_words(built_index: Path) -> None:
    with Index.open(built_index) as index:
        results = index.search_many([TextQuery("cat and espresso"), TextQuery("xqzv blorp")], k=3)
    both, nonsense = results
    assert {Path(h.path).name for h in both.hits[:2]} == {"chelsea.jpg", "coffee.jpg"}
    assert both.matched is not None and {m.words for m in both.matched.matches} == {
        "cat",
        "espresso",
    }
    assert nonsense.error is None and len(nonsense.hits) == 3
    assert max(h.score for h in nonsense.hits) < 0.01


def test_filters_apply_to_text_queries(built_index: Path) -> None:
    with Index.open(built_index) as index:
        cat = index.search(text="cat", k=1)[0]
        others = Filters(ids=frozenset(r.id for r in index.records()) - {cat.id})
        hits = index.search(text="cat", k=3, filters=others)
    assert len(hits) == 3 and cat.id not in {h.id for h in hits}


def test_an_index_without_classes_gains_them_keeping_its_vectors(
    built_index: Path, photo_library: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "index"
    shutil.copytree(built_index, directory)
    catalogue = directory / "catalogue.sqlite"
    with sqlite3.connect(catalogue) as conn:  # as an index made before schema 4 holds it
        conn.execute("DELETE FROM classes")
        vectors = conn.execute("SELECT id, generation, vector FROM vectors").fetchall()
    with Index.open(directory) as index:
        with pytest.raises(TextSearchUnavailableError, match="run 'lookalike index'"):
            index.search(text="cat")
        report = index.add([photo_library])
        assert (report.classified, report.unchanged, report.added) == (8, 8, 0)
        assert Path(index.search(text="cat", k=1)[0].path).name == "chelsea.jpg"
        assert index.add([photo_library]).classified == 0  # nothing left to classify
    with sqlite3.connect(catalogue) as conn:
        assert conn.execute("SELECT id, generation, vector FROM vectors").fetchall() == vectors


def test_a_model_without_classifier_cannot_search_by_words(
    photo_library: Path, tmp_path: Path
) -> None:
    with Index.create(tmp_path / "index", model="seed_cnn") as index:
        index.add([photo_library / "chelsea.jpg"])
        assert not index.classifies
        with pytest.raises(LookalikeError, match="cannot search by words"):
            index.search(text="cat")
        with pytest.raises(LookalikeError, match="one query"):
            index.search(photo_library / "chelsea.jpg", text="cat")
