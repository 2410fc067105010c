"""Load benchmark for `lookalike serve`: many concurrent clients searching for a fixed time.

Starts `lookalike serve` on a free loopback port over an index (default: the demo index,
made with `lookalike demo`), then runs --clients concurrent clients for --seconds. Each client
loops: three searches by indexed id (stored vector, no model run) then one search by an
uploaded image (decoded and embedded by the model). Prints requests/s, p50/p99 latency and
errors per kind of search, the latency of /health probed meanwhile, and the machine's load
average. Exits 1 if any request failed.

``--big-png-clients N`` adds N clients that keep uploading a flat 9400x9400 PNG (about 280 KB
sent, 88 megapixels to decode): the hostile upload. It counts as answered when the server
searches with it (200) or refuses it (413); what matters is how the searches by id fare
meanwhile.

    python benchmarks/web_load.py [--index DIR] [--clients 24] [--seconds 30] [--url URL]
        [--big-png-clients 0]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image

from lookalike.config import cache_home
from lookalike.evaluate.edits import apply_edit

BIG_PNG_SIDE = 9400


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: int = 0  # answered 413: over the server's upload limits


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def client_loop(
    client: httpx.AsyncClient,
    ids: list[int],
    uploads: list[bytes],
    deadline: float,
    tallies: dict[str, Tally],
    seed: int,
) -> None:
    rng = random.Random(seed)
    turn = 0
    while time.monotonic() < deadline:
        kind = "upload" if turn % 4 == 3 else "by-id"
        turn += 1
        started = time.perf_counter()
        try:
            if kind == "by-id":
                response = await client.get(f"/api/images/{rng.choice(ids)}/similar?k=20")
            else:
                data = rng.choice(uploads)
                response = await client.post(
                    "/api/search?k=20", files={"image": ("q.jpg", data, "image/jpeg")}
                )
            ok = response.status_code == 200 and bool(response.json()["results"])
            problem = None if ok else f"HTTP {response.status_code}: {response.text[:120]}"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        tally = tallies[kind]
        if problem:
            tally.errors.append(problem)
        else:
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)


def big_png() -> bytes:
    """A flat PNG of BIG_PNG_SIDE squared pixels: small to send, costly to decode in full."""
    buffer = io.BytesIO()
    Image.new("RGB", (BIG_PNG_SIDE, BIG_PNG_SIDE), (90, 120, 150)).save(buffer, "PNG")
    return buffer.getvalue()


async def big_png_loop(
    client: httpx.AsyncClient, data: bytes, deadline: float, tally: Tally
) -> None:
    """Upload the big PNG again and again; a search (200) or a refusal (413) is an answer."""
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            response = await client.post(
                "/api/search?k=20", files={"image": ("big.png", data, "image/png")}
            )
            ok = response.status_code in (200, 413)
            tally.refused += response.status_code == 413
            problem = None if ok else f"HTTP {response.status_code}: {response.text[:120]}"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            tally.errors.append(problem)
        else:
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)


async def probe_health(client: httpx.AsyncClient, deadline: float, tally: Tally) -> None:
    """Twice a second, as a monitor would: /health must keep answering under the load."""
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            response = await client.get("/health")
            if response.status_code == 200:
                tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                tally.errors.append(f"health HTTP {response.status_code}")
        except httpx.HTTPError as exc:
            tally.errors.append(f"health {type(exc).__name__}: {exc}")
        await asyncio.sleep(0.5)


async def run_load(url: str, clients: int, big_clients: int, seconds: float) -> dict[str, Tally]:
    connections = clients + big_clients + 1
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        items = (await client.get("/api/images?limit=500")).json()["items"]
        ids = [item["id"] for item in items]
        uploads = []
        for item, edit in zip(items[:6], ["flip", "jpeg_15", "greyscale"] * 2, strict=False):
            original = Image.open(io.BytesIO((await client.get(item["original_url"])).content))
            buffer = io.BytesIO()
            apply_edit(edit, original.convert("RGB")).save(buffer, "JPEG", quality=85)
            uploads.append(buffer.getvalue())
        big = big_png() if big_clients else b""
        tallies = {"by-id": Tally(), "upload": Tally(), "health": Tally()}
        if big_clients:
            tallies["big-png"] = Tally()
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            probe_health(client, deadline, tallies["health"]),
            *(client_loop(client, ids, uploads, deadline, tallies, i) for i in range(clients)),
            *(big_png_loop(client, big, deadline, tallies["big-png"]) for _ in range(big_clients)),
        )
    return tallies


def start_server(index: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "lookalike.present.cli", "serve", "--index", str(index)]
    process = subprocess.Popen([*command, "--port", "0"], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    if "serving" not in line:
        process.wait()
        raise SystemExit(line + process.stderr.read())
    url = line.split(" at ", 1)[1].split()[0]
    while httpx.get(url + "health").json()["status"] == "loading":
        time.sleep(0.2)
    return process, url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=cache_home() / "demo" / "index")
    parser.add_argument("--url", help="load a server already running here instead")
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--big-png-clients", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.big_png_clients < 0:
        parser.error("--clients and --seconds must be positive, --big-png-clients not negative")
    process = None
    url = args.url
    if url is None:
        if not (args.index / "catalogue.sqlite").exists():
            parser.error(f"no index at {args.index}: run `lookalike demo` or give --index")
        process, url = start_server(args.index)
    try:
        started = time.monotonic()
        tallies = asyncio.run(
            run_load(url.rstrip("/") + "/", args.clients, args.big_png_clients, args.seconds)
        )
        elapsed = time.monotonic() - started
    finally:
        if process:
            process.terminate()
            process.wait(timeout=30)
    big = f" + {args.big_png_clients} uploading the big PNG" if args.big_png_clients else ""
    print(f"web load: {args.clients} clients{big} for {elapsed:.1f} s against {url}")
    print(f"{'route':<8} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    everything = Tally(  # the searches' latencies; every error, /health's included
        [ms for kind in ("by-id", "upload") for ms in tallies[kind].latencies_ms],
        [error for tally in tallies.values() for error in tally.errors],
    )
    for kind, tally in [*tallies.items(), ("all", everything)]:
        n = len(tally.latencies_ms)
        print(
            f"{kind:<8} {n:>9} {n / elapsed:>8.1f} {percentile(tally.latencies_ms, 0.5):>8.1f} "
            f"{percentile(tally.latencies_ms, 0.99):>8.1f} {len(tally.errors):>7}"
            + (f"  ({tally.refused} refused: 413)" if tally.refused else "")
        )
    if everything.latencies_ms:
        print(f"mean latency {statistics.fmean(everything.latencies_ms):.1f} ms")
    for problem in sorted(set(everything.errors))[:10]:
        print(f"  error: {problem}")
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if everything.errors else 0


if __name__ == "__main__":
    sys.exit(main())
