"""Crash soak: kill -9 the real ``lookalike index`` at random moments and check the index.

    python benchmarks/crash_soak.py [--kills 50] [--seed 0] [--images N] [--runtime torch]

Makes a folder of N real images (crops, flips and re-encodings of scikit-image's bundled
photographs, each its own file). Then, round after round: changes the folder a little
(removes, adds and rewrites a few files, seeded), starts ``lookalike index`` and kills it
with SIGKILL after a random delay (seeded, up to the time a whole clean build takes). After
every kill the index must open, pass ``lookalike check``'s consistency checks, hold as many
vectors in its vector index as embedded records in its catalogue, and find a stored image
first when searched by it. At the end one uninterrupted run must leave exactly the paths a
clean build of the final folder has, with the same vectors. Prints kills, failures, the seed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lookalike import Index
from lookalike.demo import PHOTOS, write_photos
from lookalike.store.check import check_index


def make_images(folder: Path, count: int, rng: random.Random, start: int = 0) -> list[Path]:
    """``count`` distinct real images: random crops of the bundled photos, some mirrored."""
    sources = write_photos(folder.parent / "sources", PHOTOS)
    made = []
    for i in range(start, start + count):
        with Image.open(rng.choice(sources)) as photo:
            w, h = photo.size
            cw, ch = rng.randint(w // 3, w), rng.randint(h // 3, h)
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            image = photo.convert("RGB").crop((x, y, x + cw, y + ch))
        if rng.random() < 0.3:
            image = ImageOps.mirror(image)
        path = folder / f"sub{i % 7}" / f"img-{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, "JPEG", quality=rng.randint(60, 95))
        made.append(path)
    return made


def lookalike(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lookalike.present.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def problems_after_kill(index_dir: Path) -> list[str]:
    """What is wrong with the index a killed run left (empty: nothing)."""
    if not (index_dir / "catalogue.sqlite").exists():
        return []  # killed before the index was made: nothing to check
    found = list(check_index(index_dir).problems)
    with Index.open(index_dir) as index:
        embedded = list(index.records("ok"))
        vectors = len(index.store.vectors)  # type: ignore[attr-defined]  # LocalStore's
        if vectors != len(embedded):
            found.append(f"{vectors} vectors for {len(embedded)} embedded records")
        if embedded:
            probe = embedded[len(embedded) // 2]
            vector = index.store.vector(probe.id)
            assert vector is not None
            best = index.store.search(vector[None], 1)[0]
            if not best or best[0][0].id != probe.id:
                found.append(f"searching by {probe.path} did not find it first")
    return found


def vectors_by_path(index_dir: Path) -> dict[str, np.ndarray]:
    with Index.open(index_dir) as index:
        return {r.path: index.store.vector(r.id) for r in index.records("ok")}  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument(
        "--runtime", default=None, help="LOOKALIKE_RUNTIME for the runs (torch: slower runs)"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    env = dict(os.environ)
    if args.runtime:
        env["LOOKALIKE_RUNTIME"] = args.runtime
    with tempfile.TemporaryDirectory(prefix="crash-soak-") as tmp:
        folder, index_dir = Path(tmp) / "images", Path(tmp) / "index"
        images = make_images(folder, args.images, rng)
        next_id = len(images)
        print(f"seed {args.seed}: {len(images)} images in {folder}; load {os.getloadavg()}")
        started = time.perf_counter()
        clean = lookalike("index", str(folder), "--index", str(Path(tmp) / "clean"), env=env)
        clean.wait()
        full_run = time.perf_counter() - started
        shutil.rmtree(Path(tmp) / "clean")
        print(f"a clean build takes {full_run:.1f} s; kills come after 0.2 s to that")

        kills = failures = completed = 0
        while kills < args.kills:
            for path in rng.sample(sorted(folder.rglob("*.jpg")), rng.randint(0, 3)):
                path.unlink()  # vanished files: removals
            make_images(folder, rng.randint(0, 3), rng, next_id)  # new files: additions
            next_id += 3
            for path in rng.sample(sorted(folder.rglob("*.jpg")), rng.randint(0, 2)):
                with Image.open(path) as image:  # rewritten files: updates
                    ImageOps.flip(image.convert("RGB")).save(path, "JPEG", quality=80)
            run = lookalike("index", str(folder), "--index", str(index_dir), "--quiet", env=env)
            try:
                run.wait(timeout=rng.uniform(0.2, full_run))
                completed += 1
            except subprocess.TimeoutExpired:
                run.send_signal(signal.SIGKILL)
                run.wait()
                kills += 1
            stderr = run.stderr.read().decode(errors="replace") if run.stderr else ""
            if run.returncode not in (0, -signal.SIGKILL) or "Traceback" in stderr:
                failures += 1
                last = stderr.strip().splitlines()[-1:] or [""]
                print(f"run failed ({run.returncode}): {last[0]}")
            problems = problems_after_kill(index_dir)
            if problems:
                failures += 1
                print(f"after kill {kills}: {'; '.join(problems)}")

        final = lookalike("index", str(folder), "--index", str(index_dir), "--quiet", env=env)
        final.wait()
        reference = Path(tmp) / "reference"
        lookalike("index", str(folder), "--index", str(reference), "--quiet", env=env).wait()
        soaked, fresh = vectors_by_path(index_dir), vectors_by_path(reference)
        same_paths = set(soaked) == set(fresh)
        worst = max(float(np.abs(soaked[p] - fresh[p]).max()) for p in fresh) if same_paths else -1
        if not same_paths or worst > 1e-4:
            failures += 1
        print(
            f"kills {kills}, runs that completed {completed}, failures {failures}, seed "
            f"{args.seed}; final paths equal a clean build: {same_paths} ({len(fresh)} images), "
            f"largest vector difference {worst:.2g}; load {os.getloadavg()}"
        )
        sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
