"""A non-editable install (`pip install .`) works away from the checkout: the wheel holds the shared browser
harness, the built page and engine, and wllama's files, so the server serves the page and `python -m bench`
starts from any directory."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVE_THE_PAGE = """
import bench.wllama, harness.browser, static_server.app
from pathlib import Path
from starlette.testclient import TestClient
from static_server import create_app
installed = Path(static_server.app.__file__).parent.parent
for module in (bench.wllama, harness.browser, static_server.app):
    assert Path(module.__file__).is_relative_to(installed), module.__file__
assert (bench.wllama.WLLAMA_ESM / "index.js").is_file(), bench.wllama.WLLAMA_ESM
client = TestClient(create_app(Path("bundles")))
for path in ("/", "/static/engine.js", "/static/cpu-thread.js"):
    assert client.get(path).status_code == 200, path
"""


def test_an_installed_wheel_serves_the_page_and_runs_the_bench_from_any_directory(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--quiet", "--wheel-dir",
                    str(tmp_path / "wheel")], check=True, cwd=tmp_path)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
                    *map(str, (tmp_path / "wheel").glob("tabllm-*.whl"))], check=True)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}  # the installed copy before the editable checkout
    subprocess.run([sys.executable, "-c", SERVE_THE_PAGE], check=True, cwd=away, env=env)
    usage = subprocess.run([sys.executable, "-m", "bench", "--help"], check=True, cwd=away, env=env,
                           capture_output=True, text=True).stdout
    assert usage.startswith("usage: python -m bench")
