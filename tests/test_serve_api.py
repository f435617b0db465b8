"""`memnet serve`'s HTTP API through FastAPI's in-process client: results, limits and errors."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("httpx2", reason="needs the serve extra (httpx2 for the test client)")

from fastapi.testclient import TestClient
from PIL import Image

from memnet.cli import main
from memnet.serving.app import _wait, create_app
from memnet.serving.catalogue import Catalogue
from memnet.serving.errors import JobCancelledError
from memnet.serving.jobs import Job, WorkerPool
from memnet.serving.settings import ServeSettings
from memnet.weights import zoo

MODELS = ("memnet-sr", "memnet-denoise", "memnet-jpeg", "bicubic")
TOKEN = "s3cret-token-for-tests"


def picture(height: int = 40, width: int = 48, seed: int = 0) -> Image.Image:
    """A smooth colour picture with some texture, different for every seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x + seed), np.cos(5 * y), np.sin(4 * (x + y))], axis=-1)
    noisy = 0.5 + 0.35 * base + 0.08 * rng.standard_normal((height, width, 3))
    return Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8))


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height but holds almost no data (a bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def settings(**changes: object) -> ServeSettings:
    values: dict[str, object] = {"models": MODELS, "queue_size": 4}
    values.update(changes)
    return ServeSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(settings())) as test_client:
        yield test_client


def post(client: TestClient, content: bytes, name: str = "photo.png", **fields: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/restore", files={"image": (name, content, "image/png")}, data=fields)


def one_line_error(response, status: int) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert message
    assert "\n" not in message
    return str(message)


# ---------------------------------------------------------------- results


@pytest.mark.parametrize(
    ("cli", "fields", "suffix"),
    [
        (
            ["--task", "sr", "--scale", "2", "--model", "memnet-sr"],
            {"task": "sr", "scale": "2", "model": "memnet-sr"},
            ".png",
        ),
        (["--task", "denoise", "--sigma", "25"], {"task": "denoise", "sigma": "25"}, ".png"),
        (["--task", "jpeg", "--quality", "10"], {"task": "jpeg", "quality": "10"}, ".png"),
        (
            ["--task", "sr", "--scale", "3", "--ext", "jpg", "--color", "rgb"],
            {"task": "sr", "scale": "3", "format": "jpg", "color": "rgb"},
            ".jpg",
        ),
    ],
)
def test_response_is_the_same_bytes_as_memnet_restore(
    client: TestClient, tmp_path: Path, cli: list[str], fields: dict[str, str], suffix: str
) -> None:
    source = tmp_path / "photo.png"
    source.write_bytes(encoded(picture(24, 32)))
    target = tmp_path / f"out{suffix}"
    assert main(["restore", "-i", str(source), "-o", str(target), "-q", *cli]) == 0
    response = post(client, source.read_bytes(), **fields)
    assert response.status_code == 200, response.text
    assert response.content == target.read_bytes()
    assert response.headers["content-type"] == ("image/png" if suffix == ".png" else "image/jpeg")
    assert "attachment" in response.headers["content-disposition"]


def test_job_reports_progress_and_gives_the_same_result(client: TestClient) -> None:
    content = encoded(picture(seed=3))
    direct = post(client, content, task="sr", scale="2")
    answer = post(client, content, task="sr", scale="2", mode="job")
    assert answer.status_code == 202
    job = answer.json()
    assert job["width"] == 96
    assert job["height"] == 80
    deadline = time.monotonic() + 30
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["state"] == "done"
    assert job["progress"] == 1.0
    result = client.get(job["result"])
    assert result.status_code == 200
    assert result.content == direct.content


def test_large_results_become_jobs() -> None:
    with TestClient(create_app(settings(sync_max_pixels=1000))) as small:
        answer = post(small, encoded(picture()), task="sr", scale="2")
        assert answer.status_code == 202
        assert answer.headers["location"] == f"/v1/jobs/{answer.json()['id']}"


def test_models_health_and_schema(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == set(MODELS)
    assert models["memnet-sr"]["metrics"]["Set5/x2"] == str(zoo.get("memnet-sr").metrics["Set5/x2"])
    assert models["memnet-denoise"]["levels"] == []
    assert models["memnet-denoise"]["range"] == [0.0, 75.0]
    assert models["memnet-sr"]["task"] == "sr"
    assert models["memnet-sr"]["default"]
    assert models["bicubic"]["baseline"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["workers"] == 1
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/restore"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert {"413", "415", "422", "429"} <= set(schema["paths"]["/v1/restore"]["post"]["responses"])
    page = client.get("/")
    assert page.status_code == 200
    assert "<title>memnet" in page.text
    assert "https://" not in page.text  # nothing fetched from elsewhere
    assert client.get("/static/app.js").status_code == 200


# ---------------------------------------------------------------- bad input


def test_bad_files_get_their_status(client: TestClient) -> None:
    good = encoded(picture())
    assert "empty" in one_line_error(post(client, b"", task="sr"), 400)
    assert "not an image" in one_line_error(
        post(client, b"just some text\n" * 20, "notes.txt", task="sr"), 415
    )
    message = one_line_error(post(client, good[: len(good) // 2], task="sr"), 422)
    assert message.startswith("photo.png: ")  # the client's name, not the server's temporary file
    # Header-only pictures: one past Pillow's own bomb limit, one past this server's limit.
    assert "limit" in one_line_error(post(client, png_header_only(30000, 30000), task="sr"), 413)
    assert "limit" in one_line_error(post(client, png_header_only(5000, 5000), task="sr"), 413)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"task": "paint"}, "task"),
        ({"task": "sr", "scale": "-1"}, "scale"),
        ({"task": "sr", "scale": "nan"}, "scale"),
        ({"task": "sr", "scale": "1e308"}, "scale"),
        ({"task": "denoise", "sigma": "-3"}, "sigma"),
        ({"task": "sr", "scale": "two"}, "scale"),
        ({"task": "jpeg", "quality": "7.5"}, "quality"),
        ({"task": "denoise", "model": "memnet-sr"}, "restores 'sr'"),
        ({"task": "sr", "model": "nope"}, "unknown model"),
        ({"task": "sr", "format": "gif"}, "format"),
        ({"task": "sr", "color": "cmyk"}, "color"),
        ({"task": "sr", "mode": "later"}, "mode"),
        ({}, "task"),
    ],
)
def test_bad_parameters_are_400(client: TestClient, fields: dict[str, str], words: str) -> None:
    assert words in one_line_error(post(client, encoded(picture()), **fields), 400)


def test_missing_image_and_wrong_body_are_400(client: TestClient) -> None:
    assert "image" in one_line_error(client.post("/v1/restore", data={"task": "sr"}), 400)
    assert one_line_error(client.post("/v1/restore", json={"task": "sr"}), 400)
    assert "no job" in one_line_error(client.get("/v1/jobs/unknown"), 404)


def test_pixel_limit_counts_the_result() -> None:
    with TestClient(create_app(settings(max_pixels=20_000))) as limited:
        assert (
            post(limited, encoded(picture()), task="sr", scale="2").status_code == 200
        )  # 7,680 px
        message = one_line_error(post(limited, encoded(picture()), task="sr", scale="4"), 413)
        assert "192x160" in message


def multipart(content: bytes, boundary: str = "memnet-test-boundary") -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="task"\r\n\r\nsr\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )


def test_oversize_uploads_are_refused_while_streaming() -> None:
    body = multipart(encoded(picture(120, 120)))  # ~40 kB of PNG
    assert len(body) > 8192
    headers = {"Content-Type": "multipart/form-data; boundary=memnet-test-boundary"}
    with TestClient(create_app(settings(max_upload_bytes=8192))) as limited:
        # Declared too large: refused before any of the body is read.
        message = one_line_error(limited.post("/v1/restore", content=body, headers=headers), 413)
        assert "0.008192 MB" in message

        # No length given (chunked): refused once the streamed bytes pass the limit.
        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 1024):
                yield body[start : start + 1024]

        response = limited.post("/v1/restore", content=chunks(), headers=headers)
        one_line_error(response, 413)
        assert limited.get("/healthz").json()["served"] == 0
        # A small picture still goes through the same server.
        assert post(limited, encoded(picture(16, 16)), task="sr").status_code == 200


def test_token_is_required_when_set() -> None:
    with TestClient(create_app(settings(token=TOKEN))) as guarded:
        assert "token" in one_line_error(guarded.get("/v1/models"), 401)
        wrong = guarded.get("/v1/models", headers={"Authorization": "Bearer wrong-token-123"})
        assert one_line_error(wrong, 401)
        assert wrong.headers["www-authenticate"] == "Bearer"
        assert one_line_error(post(guarded, encoded(picture()), task="sr"), 401)
        assert one_line_error(guarded.get("/healthz"), 401)
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert guarded.get("/v1/models", headers=good).status_code == 200
        response = guarded.post(
            "/v1/restore",
            files={"image": ("p.png", encoded(picture()), "image/png")},
            data={"task": "sr"},
            headers=good,
        )
        assert response.status_code == 200
        assert guarded.get("/").status_code == 200  # the page itself holds no data


# ---------------------------------------------------------------- bounded work


def test_full_queue_is_429_and_a_cancelled_job_frees_its_place() -> None:
    # Workers not started: jobs wait in line, so the bound is what decides.
    app = create_app(settings(queue_size=2), start_workers=False)
    with TestClient(app) as idle:
        content = encoded(picture())
        first = post(idle, content, task="sr", mode="job")
        second = post(idle, content, task="sr", mode="job")
        assert (first.status_code, second.status_code) == (202, 202)
        assert second.json()["queue_position"] == 1
        full = post(idle, content, task="sr", mode="job")
        assert "busy" in one_line_error(full, 429)
        assert full.headers["retry-after"] == "1"
        first_id = first.json()["id"]
        assert "queued" in one_line_error(idle.get(f"/v1/jobs/{first_id}/result"), 409)
        uploads = app.state.pool.scratch
        assert len(list(uploads.iterdir())) == 2
        assert idle.delete(f"/v1/jobs/{first_id}").json()["state"] == "cancelled"
        assert len(list(uploads.iterdir())) == 1  # its upload is gone with it
        assert post(idle, content, task="sr", mode="job").status_code == 202
        assert idle.get("/healthz").json()["waiting"] == 2


class GoneClient:
    """A request whose client has disconnected."""

    async def is_disconnected(self) -> bool:
        return True


def test_a_disconnected_client_frees_its_place(tmp_path: Path) -> None:
    pool = WorkerPool(settings(queue_size=1))
    try:
        upload = pool.new_upload_path(".png")
        upload.write_bytes(encoded(picture()))
        options = Catalogue(MODELS).options(
            filename="p.png",
            task="sr",
            model=None,
            levels={"scale": 2},
            color="auto",
            output_format="auto",
        )
        job = Job(upload, "p.png", options, 80, 96)
        pool.submit(job)
        assert not asyncio.run(_wait(GoneClient(), job, pool))  # type: ignore[arg-type]
        assert job.state == "cancelled"
        assert pool.stats()["waiting"] == 0
        assert not upload.exists()
        # A running job stops at its next progress step.
        running = Job(upload, "p.png", options, 80, 96)
        running.cancel_requested = True
        with pytest.raises(JobCancelledError):
            running.progress(1, 4)
    finally:
        pool.close()


# ---------------------------------------------------------------- the command


def test_serve_without_the_extra_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a)
    )
    assert main(["serve"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'pip install -c constraints.txt -e ".[serve]"' in err


def test_listening_beyond_localhost_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123", "--model", "bicubic"]) == 0
    assert seen["host"] == "0.0.0.0"
    assert seen["port"] == 8123
    assert "no authentication" in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--token", TOKEN, "--model", "bicubic"]) == 0
    err = capsys.readouterr().err
    assert "no authentication" not in err
    assert "Bearer" in err
    assert main(["serve", "--workers", "0"]) == 1
    assert "--workers" in capsys.readouterr().err
