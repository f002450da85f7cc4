"""The placeholder page lists the complete bundles the server was given, and nothing else."""
import numpy as np
from starlette.testclient import TestClient

from compile.bundle import write_bundle
from static_server import create_app


def make_bundle(path, model: str, quantization: str):
    return write_bundle(path, model=model, quantization=quantization,
                        params=[("w", np.arange(8, dtype=np.float32))], chat_config={}, files={}, build={})


def test_index_lists_complete_bundles_only(tmp_path):
    first = make_bundle(tmp_path / "smollm2-q4f32_1", "smollm2", "q4f32_1")
    second = make_bundle(tmp_path / "smollm2-q0f32", "smollm2", "q0f32")
    (tmp_path / "no-manifest").mkdir()
    (tmp_path / "no-manifest" / "mlc-chat-config.json").write_text("{}")
    (tmp_path / ".smollm2-q4f32_1.partial-x1y2").mkdir()  # a write still in progress (or killed)
    (tmp_path / ".smollm2-q4f32_1.partial-x1y2" / "manifest.json").write_text("{}")
    broken = tmp_path / "broken-manifest"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")

    response = TestClient(create_app(tmp_path)).get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for bundle in (first, second):
        assert bundle.path.name in response.text and bundle.bundle_id in response.text
    for hidden in ("no-manifest", "partial", "broken-manifest"):
        assert hidden not in response.text


def test_index_without_bundles_says_how_to_build_one(tmp_path):
    response = TestClient(create_app(tmp_path / "missing")).get("/")
    assert response.status_code == 200
    assert "python -m compile" in response.text
