"""The explorer's memory stays flat under use: 500 mixed requests after a warm-up leave the server's resident memory
within ±10 % (slow: about ten minutes on a shared 2-core CPU; run with ``-m slow``)."""

from __future__ import annotations

import gc
import io
import random
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from test_explore_api import local_client  # noqa: E402

from convscope.explore import Explorer  # noqa: E402
from convscope.explore.pictures import give_back_memory  # noqa: E402

PICTURES = ("sample:chelsea", "sample:coffee", "sample:astronaut")


def resident_mb() -> float:
    """This process's (the server's, in process) resident memory after a collection, in MB."""
    gc.collect()
    give_back_memory()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def mixed_requests(client, count: int, generator: random.Random, pictures: list[str], relevance: bool = True
                   ) -> dict[int, int]:
    """``count`` requests as a page makes them: predictions, maps of any class, live occlusion, pictures, channels,
    relevance (unless ``relevance`` is false), listings, refused ones; answers counted by status."""
    statuses: dict[int, int] = {}
    for _ in range(count):
        pic = generator.choice(pictures)
        kind = generator.random()
        if kind < 0.25:
            params = {"pic": pic, "method": generator.choice(["grad_cam", "saliency", "guided_backprop"]),
                      "target": str(generator.randrange(1000))}
            if params["method"] == "grad_cam" and generator.random() < 0.3:
                params["layer"] = generator.choice(["blocks.4", "blocks.5", "bn2"])
            answer = client.get("/api/explain", params=params)
        elif kind < 0.5:
            answer = client.get("/api/occlude", params={"pic": pic, "x": generator.randrange(176),
                                                        "y": generator.randrange(176), "size": 48})
        elif kind < 0.6:
            answer = client.get("/api/predict", params={"pic": pic, "k": generator.randrange(1, 10)})
        elif kind < 0.7:
            answer = client.get("/api/picture.png", params={"pic": pic})
        elif kind < 0.78:
            answer = client.get("/api/activations", params={"pic": pic, "layer": generator.choice(
                ["blocks.2", "blocks.3", "blocks.4"])})
        elif kind < 0.84:
            answer = client.get("/api/channel", params={"pic": pic, "layer": "blocks.2",
                                                       "channel": generator.randrange(40)})
        elif kind < 0.87 and relevance:
            answer = client.get("/api/relevance", params={"pic": pic, "layer": "blocks.4",
                                                         "target": str(generator.randrange(1000))})
        elif kind < 0.94:
            answer = client.get(generator.choice(["/api/info", "/api/methods", "/api/queue", "/api/colormaps",
                                                  "/api/pictures", "/api/layers"]))
        else:  # refused: an unknown class, a setting the method has not, a budget passed
            answer = client.get("/api/explain", params=generator.choice([
                {"pic": pic, "method": "grad_cam", "target": "tabbby"},
                {"pic": pic, "method": "saliency", "samples": 4},
                {"pic": pic, "method": "occlusion", "size": 2, "stride": 1}]))
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    return statuses


@pytest.mark.slow
def test_memory_stays_flat_over_500_mixed_requests(lite0, tmp_path) -> None:
    explorer = Explorer(lite0, cache=tmp_path / "cache", methods=["grad_cam", "saliency", "guided_backprop"])
    explorer.worker.cache.max_bytes = 16 * 2**20  # the result cache (shared by the lanes) full within the warm-up
    client = local_client(explorer)
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (30, 140, 200)).save(buffer, format="PNG")
    upload = client.post("/api/upload", files={"file": ("blue.png", buffer.getvalue(), "image/png")}).json()["id"]
    pictures = [*PICTURES, upload]
    generator = random.Random(0)
    # every kind of request, many times, and the caches full; relevance apart (see the next test)
    warm = mixed_requests(client, 300, generator, pictures, relevance=False)
    before = resident_mb()
    statuses = mixed_requests(client, 500, generator, pictures, relevance=False)
    after = resident_mb()
    print(f"resident memory: {before:.0f} MB after the warm-up, {after:.0f} MB after 500 more requests "
          f"(answers {statuses}; warm-up {warm}; cached {len(explorer.worker.cache)} results, "
          f"{explorer.worker.cache.size / 2**20:.1f} MB)")
    assert set(statuses) <= {200, 400} and statuses.get(200, 0) > 400
    assert explorer.worker.cache.size <= explorer.worker.cache.max_bytes
    assert abs(after - before) <= 0.10 * before, (before, after)


@pytest.mark.slow
def test_relevance_requests_keep_no_memory(lite0, tmp_path) -> None:
    client = local_client(Explorer(lite0, cache=tmp_path / "cache", methods=["grad_cam"]))
    generator = random.Random(0)

    def ask(count: int) -> None:
        for _ in range(count):
            answer = client.get("/api/relevance", params={"pic": generator.choice(PICTURES), "layer": "blocks.4",
                                                         "target": str(generator.randrange(1000))})
            assert answer.status_code == 200, answer.text

    ask(3)
    before = resident_mb()
    ask(10)
    after = resident_mb()
    print(f"resident memory: {before:.0f} MB, {after:.0f} MB after 10 relevance rankings")
    assert after - before <= 0.10 * before, (before, after)
