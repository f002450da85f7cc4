"""The server: the page, the bundle listing, bundle and asset files (Range, ETag/304, MIME, caching, gzip),
cross-origin isolation and CSP headers, and refusals of traversal and unknown bundles."""
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from compile.bundle import write_bundle
from harness.server import free_port
from static_server import create_app
from static_server.app import IMMUTABLE
from static_server.headers import CONTENT_SECURITY_POLICY

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = "tiny-q4f32_1-webgpu.wasm"
WASM_BYTES = b"\0asm\x01\0\0\0" + bytes(range(256)) * 4
TOKENIZER_TEXT = json.dumps({"model": {"vocab": {f"token{i}": i for i in range(300)}}})  # compressible, > 500 B


def make_bundle(path: Path, model: str = "tiny", quantization: str = "q4f32_1", context_window_size: int = 2048):
    sources = path.parent / f"{path.name}-sources"
    sources.mkdir(parents=True)
    (sources / LIBRARY).write_bytes(WASM_BYTES)
    (sources / "tokenizer.json").write_text(TOKENIZER_TEXT)
    return write_bundle(path, model=model, quantization=quantization,
                        params=[("w", np.arange(4096, dtype=np.float32))],
                        # model and quantization here too, as in real bundles: the id hashes the files' contents
                        chat_config={"model_type": model, "quantization": quantization,
                                     "context_window_size": context_window_size},
                        files={LIBRARY: sources / LIBRARY, "tokenizer.json": sources / "tokenizer.json"}, build={})


@pytest.fixture
def assets_dir(tmp_path):
    """A stand-in for web/dist."""
    directory = tmp_path / "dist"
    directory.mkdir()
    (directory / "chat.js").write_text("// the chat page\n" + "console.log('tabllm');\n" * 100)
    (directory / "chat.css").write_text("body { margin: 0; }\n")
    (directory / "engine.js").write_text("export async function createEngine() {}\n")
    (directory / "worker.js").write_text("self.onmessage = () => {};\n")
    (directory / "chat.js.map").write_text(json.dumps({"version": 3, "sources": ["chat.js"] * 100}))
    return directory


@pytest.fixture
def bundles_dir(tmp_path):
    directory = tmp_path / "bundles"
    directory.mkdir()
    return directory


@pytest.fixture
def bundle(bundles_dir):
    return make_bundle(bundles_dir / "tiny-q4f32_1")


@pytest.fixture
def client(bundles_dir, assets_dir):
    return TestClient(create_app(bundles_dir, assets_dir))


def file_url(bundle, name: str) -> str:
    return f"/bundles/{bundle.bundle_id}/{name}"


def sha256_of(bundle, name: str) -> str:
    return next(entry["sha256"] for entry in bundle.manifest["files"] if entry["path"] == name)


# --- the page ---------------------------------------------------------------------------------------------

def test_page_offers_complete_bundles_only(client, bundles_dir):
    first = make_bundle(bundles_dir / "tiny-q4f32_1")
    second = make_bundle(bundles_dir / "tiny-q0f32", quantization="q0f32")
    (bundles_dir / "no-manifest").mkdir()
    (bundles_dir / "no-manifest" / "mlc-chat-config.json").write_text("{}")
    (bundles_dir / ".tiny-q4f32_1.partial-x1y2").mkdir()  # a write still in progress (or killed)
    (bundles_dir / ".tiny-q4f32_1.partial-x1y2" / "manifest.json").write_text("{}")
    (bundles_dir / "broken-manifest").mkdir()
    (bundles_dir / "broken-manifest" / "manifest.json").write_text("{not json")

    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/chat.js"></script>' in response.text
    for offered in (first, second):
        assert f'<option value="/bundles/{offered.bundle_id}/" data-name="tiny ({offered.manifest["quantization"]})">' \
            in response.text
    assert "tiny · q0f32" in response.text and "tiny · q4f32_1" in response.text
    for hidden in ("no-manifest", "partial", "broken-manifest"):
        assert hidden not in response.text


def test_page_without_bundles_says_how_to_build_one(tmp_path, assets_dir):
    response = TestClient(create_app(tmp_path / "missing", assets_dir)).get("/")
    assert response.status_code == 200
    assert "No bundles on this server" in response.text
    assert "python -m compile smollm2-135m-instruct" in response.text


def test_page_without_built_assets_says_how_to_build_them(bundles_dir, bundle, tmp_path):
    response = TestClient(create_app(bundles_dir, tmp_path / "no-dist")).get("/")
    assert "chat.js, chat.css, engine.js, worker.js missing" in response.text
    assert "npm run build --prefix web" in response.text


def test_page_has_no_inline_script_or_style(client, bundle):
    # The CSP allows neither; an inline one would be blocked in the browser.
    text = client.get("/").text
    assert "<style" not in text and " style=" not in text
    assert text.count("<script") == 1


def test_python_page_links_its_script_and_shares_the_bundle_picker(client, bundle, assets_dir):
    (assets_dir / "pyodide").mkdir()
    for name in ("python.js", "python.css", "pyodide/pyodide-lock.json"):
        (assets_dir / name).write_bytes(b"x")
    response = client.get("/python")
    assert response.status_code == 200 and response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert '<script type="module" src="/static/python.js"></script>' in response.text
    assert f'<option value="/bundles/{bundle.bundle_id}/" data-name="tiny (q4f32_1)">' in response.text
    assert '<div id="notice" class="notice" role="alert" hidden>' in response.text
    assert "<style" not in response.text and response.text.count("<script") == 1


def test_python_page_without_pyodide_built_says_how_to_build_it(client, bundle):
    text = client.get("/python").text
    assert "python.js, python.css, pyodide/pyodide-lock.json missing in web/dist" in text
    assert "run <code>make setup</code>" in text


@pytest.mark.parametrize("name, media_type", [
    ("pyodide.mjs", "text/javascript; charset=utf-8"),  # a module script must be served as JavaScript
    ("pyodide.asm.wasm", "application/wasm"),  # WebAssembly.instantiateStreaming needs the type
    ("pyodide-lock.json", "application/json"),
    ("tabllm_browser-0.1.0-py3-none-any.whl", "application/zip"),
])
def test_pyodide_files_are_served_with_their_types_and_the_security_headers(client, assets_dir, name, media_type):
    (assets_dir / "pyodide").mkdir()
    (assets_dir / "pyodide" / name).write_bytes(b"\0asm" * 300)
    response = client.get(f"/pyodide/{name}")
    assert response.status_code == 200 and response.content == b"\0asm" * 300
    assert response.headers["content-type"] == media_type
    assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert response.headers["cache-control"] == "no-cache"
    assert client.get("/pyodide/missing.whl").json()["error"]["code"] == "file_not_found"


# --- /api/bundles -----------------------------------------------------------------------------------------

def test_listing_with_no_bundles(tmp_path, assets_dir, bundles_dir):
    assert TestClient(create_app(tmp_path / "missing", assets_dir)).get("/api/bundles").json() == []
    assert TestClient(create_app(bundles_dir, assets_dir)).get("/api/bundles").json() == []


def test_listing_with_one_bundle(client, bundle):
    response = client.get("/api/bundles")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [{
        "id": bundle.bundle_id,
        "model": "tiny",
        "quantization": "q4f32_1",
        "context_window_size": 2048,
        "total_bytes": bundle.total_bytes,
        "created": bundle.manifest["created"],
        "url": f"/bundles/{bundle.bundle_id}/",
    }]
    assert bundle.total_bytes == sum(entry["bytes"] for entry in bundle.manifest["files"]) > 16384


def test_listing_with_several_bundles_skips_incomplete_ones(client, bundles_dir):
    made = [make_bundle(bundles_dir / name, quantization=quantization, context_window_size=window)
            for name, quantization, window in [("b-q0f32", "q0f32", 1024), ("a-q4f32_1", "q4f32_1", 4096)]]
    (bundles_dir / ".c.partial-123").mkdir()
    (bundles_dir / ".c.partial-123" / "manifest.json").write_text("{}")
    (bundles_dir / "no-manifest").mkdir()
    (bundles_dir / "stray-file.txt").write_text("not a bundle")

    listing = client.get("/api/bundles").json()
    assert [item["id"] for item in listing] == [made[1].bundle_id, made[0].bundle_id]  # directory name order
    assert [(item["quantization"], item["context_window_size"]) for item in listing] == [("q4f32_1", 4096),
                                                                                         ("q0f32", 1024)]


def test_bundles_added_and_removed_while_running_show_up(client, bundles_dir):
    assert client.get("/api/bundles").json() == []
    added = make_bundle(bundles_dir / "tiny-q4f32_1")
    assert [item["id"] for item in client.get("/api/bundles").json()] == [added.bundle_id]
    assert client.get(file_url(added, "tokenizer.json")).status_code == 200
    (bundles_dir / "tiny-q4f32_1" / "manifest.json").unlink()
    assert client.get("/api/bundles").json() == []
    assert client.get(file_url(added, "tokenizer.json")).status_code == 404


# --- bundle files -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, media_type", [
    (LIBRARY, "application/wasm"),
    ("params_shard_0.bin", "application/octet-stream"),
    ("tensor-cache.json", "application/json"),
    ("mlc-chat-config.json", "application/json"),
    ("tokenizer.json", "application/json"),
])
def test_bundle_files_are_served_whole_with_type_etag_and_immutable_caching(client, bundle, name, media_type):
    response = client.get(file_url(bundle, name), headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.content == (bundle.path / name).read_bytes()
    assert response.headers["content-type"] == media_type
    assert response.headers["cache-control"] == IMMUTABLE
    assert response.headers["etag"] == f'"{sha256_of(bundle, name)}"'
    assert response.headers["accept-ranges"] == "bytes"


def test_manifest_is_served_but_revalidated(client, bundle):
    # It carries a build timestamp, which the bundle id does not cover.
    response = client.get(file_url(bundle, "manifest.json"))
    assert response.json()["bundle_id"] == bundle.bundle_id
    assert response.headers["cache-control"] == "no-cache"


def test_etag_gives_304(client, bundle):
    url = file_url(bundle, "params_shard_0.bin")
    etag = client.get(url).headers["etag"]
    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get(url, headers={"If-None-Match": if_none_match})
        assert response.status_code == 304, if_none_match
        assert response.content == b""
        assert response.headers["etag"] == etag and response.headers["cache-control"] == IMMUTABLE
    assert client.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_range_requests(client, bundle):
    url = file_url(bundle, "params_shard_0.bin")
    data = (bundle.path / "params_shard_0.bin").read_bytes()
    size = len(data)

    response = client.get(url, headers={"Range": "bytes=100-1123"})
    assert response.status_code == 206
    assert response.content == data[100:1124]
    assert response.headers["content-range"] == f"bytes 100-1123/{size}"
    assert response.headers["content-length"] == "1024"

    suffix = client.get(url, headers={"Range": "bytes=-16"})
    assert suffix.status_code == 206 and suffix.content == data[-16:]
    open_ended = client.get(url, headers={"Range": f"bytes={size - 8}-"})
    assert open_ended.status_code == 206 and open_ended.content == data[-8:]

    for header in (f"bytes={size}-{size + 10}", f"bytes={size}-", "bytes=-0"):
        unsatisfiable = client.get(url, headers={"Range": header})
        assert unsatisfiable.status_code == 416, header
        assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
        assert unsatisfiable.json()["error"]["code"] == "range_not_satisfiable"
        assert unsatisfiable.headers["content-security-policy"] == CONTENT_SECURITY_POLICY

    etag = response.headers["etag"]
    assert client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}).status_code == 206
    stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == data  # changed since: the whole file


def test_gzip_for_json_and_javascript_only(client, bundle, assets_dir):
    gzip_ok = {"Accept-Encoding": "gzip"}
    (assets_dir / "pyodide").mkdir()
    (assets_dir / "pyodide" / "pyodide.mjs").write_text("export const version = '314.0.7';\n" * 100)
    for url in (file_url(bundle, "tokenizer.json"), file_url(bundle, "tensor-cache.json"), "/static/chat.js",
                "/static/chat.js.map", "/pyodide/pyodide.mjs"):
        response = client.get(url, headers=gzip_ok)
        assert response.headers.get("content-encoding") == "gzip", url
        assert "Accept-Encoding" in response.headers["vary"]

    for name in ("params_shard_0.bin", LIBRARY):
        response = client.get(file_url(bundle, name), headers=gzip_ok)
        assert "content-encoding" not in response.headers, name
        assert response.content == (bundle.path / name).read_bytes()
    ranged = client.get(file_url(bundle, "tokenizer.json"), headers={**gzip_ok, "Range": "bytes=0-99"})
    assert ranged.status_code == 206 and "content-encoding" not in ranged.headers
    assert ranged.content == TOKENIZER_TEXT.encode()[:100]


def test_gzipped_body_is_valid_gzip(bundles_dir, assets_dir, bundle):
    # Read the body as sent, without httpx decoding it.
    with TestClient(create_app(bundles_dir, assets_dir)) as client:
        with client.stream("GET", file_url(bundle, "tokenizer.json"), headers={"Accept-Encoding": "gzip"}) as response:
            body = b"".join(response.iter_raw())
    assert len(body) < len(TOKENIZER_TEXT) / 2
    assert gzip.decompress(body).decode() == TOKENIZER_TEXT


def test_head_gives_headers_without_body(client, bundle):
    response = client.head(file_url(bundle, "params_shard_0.bin"))
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["content-length"]) == (bundle.path / "params_shard_0.bin").stat().st_size


# --- refusals ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/bundles/{id}/..%2Fmanifest.json",
    "/bundles/{id}/..%2F..%2F..%2Fetc%2Fpasswd",
    "/bundles/{id}/%2e%2e/%2e%2e/etc/passwd",
    "/bundles/{id}/sub/tokenizer.json",
    "/bundles/{id}/..%5Ctokenizer.json",
    "/bundles/{id}/.hidden",
    "/static/..%2F..%2Fpyproject.toml",
    "/static/%2e%2e/engine.js",
    "/pyodide/..%2Fchat.js",
    "/pyodide/sub/pyodide.mjs",
])
def test_traversal_is_refused_with_400_json(client, bundle, path):
    response = client.get(path.format(id=bundle.bundle_id))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "invalid_path" and "plain file name" in error["message"]


def test_unknown_bundle_is_404_json(client, bundle):
    response = client.get("/bundles/0123456789abcdef/tokenizer.json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "bundle_not_found"
    assert "GET /api/bundles" in response.json()["error"]["message"]
    # The directory name is not an id: bundles are addressed by content.
    assert client.get(f"/bundles/{bundle.path.name}/tokenizer.json").json()["error"]["code"] == "bundle_not_found"


def test_files_not_in_the_manifest_are_404(client, bundle):
    (bundle.path / "notes.txt").write_text("not part of the bundle")
    for name in ("notes.txt", "params_shard_9.bin"):
        response = client.get(file_url(bundle, name))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "file_not_found"


def test_unknown_routes_and_methods_are_json(client, bundle):
    assert client.get("/nowhere").json()["error"]["code"] == "not_found"
    response = client.post(file_url(bundle, "tokenizer.json"))
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    assert client.get("/static/missing.js").json()["error"]["code"] == "file_not_found"


def test_the_server_only_reads_bundles(client, bundles_dir, bundle):
    def snapshot():
        return sorted((str(p.relative_to(bundles_dir)), p.stat().st_mtime_ns, p.stat().st_size)
                      for p in bundles_dir.rglob("*"))

    before = snapshot()
    for name in [entry["path"] for entry in bundle.manifest["files"]] + ["manifest.json"]:
        client.get(file_url(bundle, name), headers={"Range": "bytes=0-3"})
        client.get(file_url(bundle, name))
    client.get("/api/bundles")
    client.get("/")
    client.put(file_url(bundle, "tokenizer.json"), content=b"overwrite")
    client.delete(file_url(bundle, "tokenizer.json"))
    assert snapshot() == before


def test_invalid_range_headers_are_ignored_and_the_whole_file_sent(client, bundle):
    url = file_url(bundle, "params_shard_0.bin")
    data = (bundle.path / "params_shard_0.bin").read_bytes()
    for header in ("bytes=abc", "bytes=10-5", "bytes=", "bytes=-", "pages=0-9", "bytes=0-9,x", "0-9",
                   "bytes=" + ",".join(["0-1"] * 200)):
        response = client.get(url, headers={"Range": header})
        assert (response.status_code, response.content) == (200, data), header  # RFC 9110 14.2: ignore it
    assert client.get(url, headers={"Range": "bytes=0-3, 8-9"}).status_code == 206  # valid ones still honoured


# --- one bad bundle does not harm the others ----------------------------------------------------------------

def edit_manifest(bundle, edit):
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    edit(manifest)
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))  # allow_nan: writes NaN as Python reads it


MALFORMED = {
    "created is NaN": lambda m: m.update(created=float("nan")),
    "a files entry without path": lambda m: m["files"][0].pop("path"),
    "a files entry with a path out of the directory": lambda m: m["files"][0].update(path="../tiny-q4f32_1/x"),
    "bytes as a string": lambda m: m["files"][0].update(bytes="12"),
    "a sha256 that is not hex": lambda m: m["files"][0].update(sha256="z" * 64),
    "files not a list": lambda m: m.update(files={"a": 1}),
    "model not a string": lambda m: m.update(model=["tiny"]),
    "an id that is not the hash of the files": lambda m: m.update(bundle_id="0123456789abcdef"),
}


@pytest.mark.parametrize("breakage", MALFORMED)
def test_a_malformed_bundle_is_skipped_and_logged_and_the_others_are_served(client, bundles_dir, bundle, breakage,
                                                                            caplog):
    broken = make_bundle(bundles_dir / "broken", context_window_size=1024)  # another id
    edit_manifest(broken, MALFORMED[breakage])
    with caplog.at_level("WARNING", logger="static_server"):
        listing = client.get("/api/bundles")
    assert listing.status_code == 200
    assert [item["id"] for item in listing.json()] == [bundle.bundle_id]
    assert client.get("/").status_code == 200
    assert client.get(file_url(bundle, "tokenizer.json")).status_code == 200
    for name in ("tokenizer.json", "manifest.json"):
        response = client.get(file_url(broken, name))
        assert response.status_code == 404 and response.json()["error"]["code"] == "bundle_not_found"
    assert any(str(broken.path) in record.getMessage() for record in caplog.records)


def test_a_bundle_id_claimed_by_two_directories_is_refused_and_logged(client, bundles_dir, bundle, caplog):
    other = make_bundle(bundles_dir / "other", context_window_size=1024)
    shutil.copytree(bundle.path, bundles_dir / "a-copy")
    with caplog.at_level("WARNING", logger="static_server"):
        assert [item["id"] for item in client.get("/api/bundles").json()] == [other.bundle_id]
        response = client.get(file_url(bundle, "tokenizer.json"))
        client.get("/api/bundles")
    assert response.status_code == 404 and response.json()["error"]["code"] == "bundle_not_found"
    warnings = [record.getMessage() for record in caplog.records if bundle.bundle_id in record.getMessage()]
    assert len(warnings) == 1 and "a-copy" in warnings[0] and "tiny-q4f32_1" in warnings[0]  # logged once
    shutil.rmtree(bundles_dir / "a-copy")
    assert client.get(file_url(bundle, "tokenizer.json")).status_code == 200  # served again once unique


def test_a_symlink_out_of_the_bundle_directory_is_never_followed(client, bundles_dir, bundle, tmp_path):
    outside = tmp_path / "outside-tokenizer.json"
    outside.write_bytes((bundle.path / "tokenizer.json").read_bytes())  # even with the listed content
    (bundle.path / "tokenizer.json").unlink()
    (bundle.path / "tokenizer.json").symlink_to(outside)
    response = client.get(file_url(bundle, "tokenizer.json"))
    assert response.status_code == 404 and response.json()["error"]["code"] == "file_not_found"
    # a bundle directory that is itself a link (bundles kept elsewhere) is served as usual
    elsewhere = tmp_path / "elsewhere"
    other = make_bundle(elsewhere / "other", context_window_size=1024)
    (bundles_dir / "linked").symlink_to(other.path)
    assert client.get(file_url(other, "tokenizer.json")).status_code == 200


@pytest.mark.parametrize("url", ["/static/" + "a" * 300, "/bundles/0123456789abcdef/" + "b" * 300])
def test_a_name_too_long_for_the_file_system_is_404_json(client, bundle, url):
    response = client.get(url)
    assert response.status_code == 404 and response.json()["error"]["code"] in ("file_not_found", "bundle_not_found")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    long_file = client.get(file_url(bundle, "c" * 300))
    assert long_file.status_code == 404 and long_file.json()["error"]["code"] == "file_not_found"


def test_unexpected_exceptions_are_500_json_with_the_security_headers(bundles_dir, assets_dir, bundle, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("static_server.app.file_response", broken)
    client = TestClient(create_app(bundles_dir, assets_dir), raise_server_exceptions=False)
    response = client.get("/static/chat.js")
    assert response.status_code == 500
    assert response.json() == {"error": {"message": "internal server error", "type": "server_error",
                                         "code": "internal_error"}}
    assert "disk on fire" not in response.text
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cross-origin-embedder-policy"] == "require-corp"


# --- headers and assets -----------------------------------------------------------------------------------

def test_isolation_and_csp_headers_on_every_response(client, bundle):
    for url in ("/", "/api/bundles", "/static/chat.js", "/static/worker.js", file_url(bundle, LIBRARY),
                "/bundles/0123456789abcdef/x", "/static/..%2Fx"):
        headers = client.get(url).headers
        assert headers["cross-origin-opener-policy"] == "same-origin", url
        assert headers["cross-origin-embedder-policy"] == "require-corp", url
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, url
        assert headers["x-content-type-options"] == "nosniff", url


def test_csp_allows_what_the_page_needs_and_nothing_more():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"  # tvmjs compiles the model library
    assert directives["worker-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "'unsafe-eval'" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.parametrize("name, media_type", [
    ("chat.js", "text/javascript; charset=utf-8"),
    ("engine.js", "text/javascript; charset=utf-8"),
    ("worker.js", "text/javascript; charset=utf-8"),
    ("chat.css", "text/css; charset=utf-8"),
    ("chat.js.map", "application/json"),
])
def test_assets_are_served_from_dist_and_revalidated(client, assets_dir, name, media_type):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.content == (assets_dir / name).read_bytes()
    assert response.headers["content-type"] == media_type
    assert response.headers["cache-control"] == "no-cache"  # rebuilt under the same name
    etag = response.headers["etag"]
    assert client.get(f"/static/{name}", headers={"If-None-Match": etag}).status_code == 304
    (assets_dir / name).write_text((assets_dir / name).read_text() + "\n")
    os.utime(assets_dir / name, ns=(time.time_ns() + 10**9,) * 2)
    assert client.get(f"/static/{name}", headers={"If-None-Match": etag}).status_code == 200


# --- python -m static_server ------------------------------------------------------------------------------

def test_command_prints_the_url_and_serves(bundles_dir, bundle):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "static_server", "--port", str(port), "--bundles", str(bundles_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().startswith(f"tabllm: open http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 20
        while True:
            try:
                listing = httpx.get(f"http://127.0.0.1:{port}/api/bundles").json()
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert [item["id"] for item in listing] == [bundle.bundle_id]
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- WebLLM and other origins ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [LIBRARY, "params_shard_0.bin", "mlc-chat-config.json", "manifest.json"])
def test_bundle_files_are_also_served_at_webllms_resolve_main_path(client, bundle, name):
    plain = client.get(file_url(bundle, name), headers={"Accept-Encoding": "identity"})
    resolved = client.get(f"/bundles/{bundle.bundle_id}/resolve/main/{name}", headers={"Accept-Encoding": "identity"})
    assert resolved.status_code == 200 and resolved.content == plain.content == (bundle.path / name).read_bytes()
    for header in ("content-type", "cache-control", "etag"):
        assert resolved.headers.get(header) == plain.headers.get(header)


def test_resolve_main_path_refuses_what_the_plain_path_refuses(client, bundle):
    assert client.get("/bundles/0123456789abcdef/resolve/main/tokenizer.json").json()["error"]["code"] == \
        "bundle_not_found"
    assert client.get(f"/bundles/{bundle.bundle_id}/resolve/main/notes.txt").status_code == 404
    response = client.get(f"/bundles/{bundle.bundle_id}/resolve/main/%2e%2e/%2e%2e/etc/passwd")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_path"
    assert client.get(f"/bundles/{bundle.bundle_id}/resolve/other/tokenizer.json").status_code == 400


def test_other_origins_get_no_cors_headers_by_default(client, bundle):
    response = client.get(file_url(bundle, "tokenizer.json"), headers={"Origin": "https://app.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
    preflight = client.options(file_url(bundle, "tokenizer.json"), headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_option_lets_that_origin_read_bundles_with_ranges(bundles_dir, assets_dir, bundle):
    client = TestClient(create_app(bundles_dir, assets_dir, cors_origin="https://app.example"))
    url = f"/bundles/{bundle.bundle_id}/resolve/main/params_shard_0.bin"
    response = client.get(url, headers={"Origin": "https://app.example", "Range": "bytes=0-9"})
    assert response.status_code == 206 and response.content == (bundle.path / "params_shard_0.bin").read_bytes()[:10]
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"content-range", "content-length", "etag"} <= exposed
    preflight = client.options(url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                                             "Access-Control-Request-Headers": "range"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "range" in preflight.headers["access-control-allow-headers"].lower()
    other = client.get(url, headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cors_command_line_option_reaches_the_app(monkeypatch, bundles_dir):
    import static_server.__main__ as cli
    served = {}
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kwargs: served.update(app=app))
    monkeypatch.setattr("sys.argv", ["static_server", "--bundles", str(bundles_dir), "--cors", "https://app.example"])
    cli.main()
    response = TestClient(served["app"]).get("/api/bundles", headers={"Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "https://app.example"
