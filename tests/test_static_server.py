"""The placeholder page lists the bundles the server was given."""
from starlette.testclient import TestClient

from static_server import create_app


def test_index_lists_bundles(tmp_path):
    for name in ("smollm2-q4f32_1", "smollm2-q0f32"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mlc-chat-config.json").write_text("{}")
    (tmp_path / "not-a-bundle").mkdir()
    response = TestClient(create_app(tmp_path)).get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "smollm2-q4f32_1" in response.text and "smollm2-q0f32" in response.text
    assert "not-a-bundle" not in response.text


def test_index_without_bundles_says_how_to_build_one(tmp_path):
    response = TestClient(create_app(tmp_path / "missing")).get("/")
    assert response.status_code == 200
    assert "python -m compile" in response.text
