"""Words -> ImageNet classes, offline: what the built-in search by words understands.

Each of the 1,000 classes has its WordNet synonyms and the WordNet concepts above it
(``data/imagenet_classes.json``, made by ``scripts/make_imagenet_classes.py``). A query's
words are matched, longest phrase first, against the names ("tabby", "espresso"), then the
concepts ("dog" is every one of the 120 breeds, "car" every kind of car); words left over
go to a sentence encoder (all-MiniLM-L6-v2), which weighs the classes whose names mean
nearly the same ("kitten" -> tiger cat, tabby cat). Colours and counts name no class, and
concepts above nearly all classes ("object") name none in particular: such words are
reported as not understood, never matched to something else.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

from lookalike.config import cache_home
from lookalike.embed.classes import save_arrays
from lookalike.embed.sentence import SentenceEncoder, model_folder

MAX_PHRASE = 4  # words; the longest class name that matters ("great white shark") has 3
# The sentence encoder's cosine below which a class is no match, and at which it weighs 1
# (measured on the class names: nonsense words reach 0.35-0.54, "sofa" -> couch 0.86).
SIMILAR_FROM, SIMILAR_FULL = 0.55, 0.9
SIMILAR_CLASSES = 5  # classes one unmatched phrase may weigh
# A concept above more classes names nearly everything ("object", "whole", "unit": 949-1000
# classes) and would drown the other words; "artifact" (522) and "animal" (398) still count.
MAX_CONCEPT_CLASSES = 600

STOPWORDS = frozenset(
    """a an the and or with without on in inside into onto of at by for to from near next
    under over above below behind beside between some any my our your his her their its
    this that these those is are was were be being been has have having showing shows
    photo photos picture pictures image images pic pics shot""".split()  # noqa: SIM905
)
# No ImageNet class is a colour or a number: these are said, not guessed at.
UNSEARCHABLE = frozenset(
    """red orange yellow green blue purple violet pink brown black white grey gray golden
    silver dark light bright colourful colorful one two three four five six seven eight
    nine ten many several few single pair couple dozen big small large tiny huge""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class ClassMatch:
    """One class the words matched: ``weight`` in (0, 1], and why (``how``)."""

    class_id: int
    name: str
    weight: float
    words: str  # the query's words that matched it
    how: str  # "name", "a kind of <concept>" or "similar (cosine 0.72)"


@dataclass(frozen=True)
class TextMatch:
    """What a query's words meant: the classes, with weights, and the words not understood."""

    text: str
    matches: tuple[ClassMatch, ...]
    ignored: tuple[str, ...]  # words no class stands for (colours, counts, nonsense)

    def describe(self, shown: int = 5) -> list[str]:
        """One line per group of words and reason: which classes, with what weight."""
        groups: dict[tuple[str, str], list[ClassMatch]] = {}
        for match in self.matches:
            reason = "similar" if match.how.startswith("similar") else match.how
            groups.setdefault((match.words, reason), []).append(match)
        lines = []
        for (words, reason), found in groups.items():
            named = ", ".join(f"{m.name} {m.weight:.2f}" for m in found[:shown])
            more = f" (+{len(found) - shown} more)" if len(found) > shown else ""
            lines.append(f'matched "{words}" ({reason}): {named}{more}')
        if self.ignored:
            lines.append(
                "not understood: " + ", ".join(f'"{w}"' for w in self.ignored) + " (no ImageNet "
                "class stands for them: colours, counts and most scenes cannot be searched)"
            )
        return lines or ["no words to search by"]

    def weights(self) -> np.ndarray:
        """float32 (1000,): each class's weight, the largest of its matches."""
        weights = np.zeros(len(vocabulary().names), dtype=np.float32)
        for match in self.matches:
            weights[match.class_id] = max(weights[match.class_id], match.weight)
        return weights


@dataclass(frozen=True)
class Vocabulary:
    """The class names and what each phrase (lower case) stands for."""

    names: tuple[str, ...]  # display name per class id
    phrases: dict[str, tuple[tuple[int, str], ...]]  # phrase -> ((class id, how), ...)
    encoder_phrases: tuple[str, ...]  # the names and synonyms the sentence encoder compares
    encoder_owner: np.ndarray  # int64: the class of each of ``encoder_phrases``
    digest: str  # of the data file: keys the cache of the encoded phrases
    general: frozenset[str]  # concepts too general to search by (MAX_CONCEPT_CLASSES)


@functools.cache
def vocabulary() -> Vocabulary:
    """The shipped class data, read once."""
    raw = resources.files("lookalike.search").joinpath("data/imagenet_classes.json").read_bytes()
    data = json.loads(raw)
    phrases: dict[str, dict[int, str]] = {}
    concepts: dict[str, list[str]] = data["concepts"]
    for class_id, entry in enumerate(data["classes"]):
        for synonym in entry["synonyms"]:
            phrases.setdefault(_normal(synonym), {})[class_id] = "name"
        for concept in entry["hypernyms"]:
            for lemma in concepts[concept]:
                # a class's own name wins over its being a kind of something
                phrases.setdefault(_normal(lemma), {}).setdefault(
                    class_id, f"a kind of {concepts[concept][0]}"
                )
    owned = [(s, i) for i, entry in enumerate(data["classes"]) for s in entry["synonyms"]]
    general = frozenset(p for p, found in phrases.items() if len(found) > MAX_CONCEPT_CLASSES)
    return Vocabulary(
        names=tuple(entry["name"] for entry in data["classes"]),
        phrases={p: tuple(found.items()) for p, found in phrases.items() if p not in general},
        encoder_phrases=tuple(s for s, _ in owned),
        encoder_owner=np.array([i for _, i in owned], dtype=np.int64),
        digest=hashlib.sha256(raw).hexdigest()[:16],
        general=general,
    )


def match_text(text: str) -> TextMatch:
    """The classes ``text`` names, with weights (see the module's docstring)."""
    words = _normal(text).split()
    vocab = vocabulary()
    matches: list[ClassMatch] = []
    ignored: list[str] = []
    leftover: list[list[str]] = [[]]  # runs of words that name nothing, for the encoder
    i = 0
    while i < len(words):
        found = _longest_phrase(words, i, vocab)
        if found is None:
            word = words[i]
            if word in STOPWORDS:
                leftover.append([])
            elif word in UNSEARCHABLE or word in vocab.general:
                ignored.append(word)
                leftover.append([])
            else:
                leftover[-1].append(word)
            i += 1
            continue
        length, phrase = found
        said = " ".join(words[i : i + length])
        matches += [
            ClassMatch(c, vocab.names[c], 1.0, said, how) for c, how in vocab.phrases[phrase]
        ]
        leftover.append([])
        i += length
    for run in (" ".join(r) for r in leftover if r):
        similar = _similar(run)
        matches += similar
        if not similar:
            ignored.append(run)
    return TextMatch(text, tuple(matches), tuple(ignored))


def _normal(text: str) -> str:
    """Lower case, words of letters and digits ("sea-coast" -> "sea coast")."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower().replace("'", "")))


def _longest_phrase(words: list[str], start: int, vocab: Vocabulary) -> tuple[int, str] | None:
    """(words taken, vocabulary phrase) of the longest phrase at ``start``, plurals too."""
    for length in range(min(MAX_PHRASE, len(words) - start), 0, -1):
        *head, last = words[start : start + length]
        for form in _singulars(last):
            phrase = " ".join([*head, form])
            if phrase in vocab.phrases:
                return length, phrase
    return None


def _singulars(word: str) -> list[str]:
    """The word, then what it would be without an English plural ending."""
    forms = [word]
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 3:
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        forms.append(word[:-1])
    return forms


def _similar(phrase: str) -> list[ClassMatch]:
    """The classes whose names the sentence encoder finds close to ``phrase``."""
    encoder, encoded = _encoder()
    vocab = vocabulary()
    cosines = encoded @ encoder.encode([phrase])[0]
    best = np.full(len(vocab.names), -1.0, dtype=np.float32)
    np.maximum.at(best, vocab.encoder_owner, cosines)
    chosen = [c for c in np.argsort(-best)[:SIMILAR_CLASSES] if best[c] >= SIMILAR_FROM]
    return [
        ClassMatch(
            int(c),
            vocab.names[c],
            float(min(1.0, (best[c] - SIMILAR_FROM) / (SIMILAR_FULL - SIMILAR_FROM))),
            phrase,
            f"similar (cosine {best[c]:.2f})",
        )
        for c in chosen
    ]


@functools.cache
def _encoder() -> tuple[SentenceEncoder, np.ndarray]:
    """The sentence encoder and its vectors of every class phrase, float32 (p, 384), cached
    on disk (computing them takes 20 s on 2 cores, once)."""
    folder = model_folder()
    vocab = vocabulary()
    stat = (folder / "model.safetensors").stat()
    key = hashlib.sha256(repr((vocab.digest, stat.st_size)).encode()).hexdigest()[:16]
    path = cache_home() / "text" / f"minilm-classes-{key}.npz"
    encoder = SentenceEncoder(folder)
    if path.is_file():
        with np.load(path) as saved:
            encoded = saved["phrases"]
        if encoded.shape == (len(vocab.encoder_phrases), encoder.dim):
            return encoder, encoded
    encoded = encoder.encode(list(vocab.encoder_phrases))
    save_arrays(path, phrases=encoded)
    return encoder, encoded
