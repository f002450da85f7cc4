"""The engine's cache API on the real server and the real SmolLM2 bundle in Chromium: after loading two bundles
(the default one and a copy with another chat config, hence another bundle id), engine.cachedBundles() lists
both with the bytes of the files each load fetched; deleteOtherCachedBundles() keeps only the loaded one,
deleteCachedBundle() removes that too, and a load afterwards downloads again. The chat page's "Cached models"
list shows the cached bundle and its Delete button deletes it."""
import hashlib
import json
import shutil

import pytest

from compile.bundle import bundle_id_of
from harness.browser import open_engine_page


@pytest.fixture(scope="module")
def two_bundles_site(serve_site, smollm2_q4_bundle, tmp_path_factory):
    """(base URL, RequestLog, the default bundle's manifest, the copy's manifest) of a server offering both."""
    bundles = tmp_path_factory.mktemp("two-bundles")
    shutil.copytree(smollm2_q4_bundle.path, bundles / "default")
    copy = bundles / "other-temperature"
    shutil.copytree(smollm2_q4_bundle.path, copy)
    config = json.loads((copy / "mlc-chat-config.json").read_text())
    config["temperature"] = 0.5
    (copy / "mlc-chat-config.json").write_text(json.dumps(config))
    manifest = json.loads((copy / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "mlc-chat-config.json":
            data = (copy / entry["path"]).read_bytes()
            entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    manifest["bundle_id"] = bundle_id_of(manifest["files"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    url, log = serve_site(bundles)
    return url, log, smollm2_q4_bundle.manifest, manifest


# The model libraries a CPU load in Chromium leaves out: it runs the relaxed-SIMD one.
NOT_LOADED = ("-webgpu.wasm", "-wasm32.wasm")


def loaded_bytes(manifest) -> int:
    """What a CPU load fetches and caches: every file but the other libraries (and the manifest, cached apart)."""
    return sum(f["bytes"] for f in manifest["files"] if not f["path"].endswith(NOT_LOADED))


def test_cached_bundles_are_listed_with_their_sizes_and_deleted(webgpu_browser, two_bundles_site):
    url, log, first, second = two_bundles_site
    assert first["bundle_id"] != second["bundle_id"]
    context = webgpu_browser.new_context()  # empty storage
    try:
        page = open_engine_page(context, url)
        for manifest in (first, second):  # the second stays loaded
            page.evaluate("(url) => window.engine.load(url, {device: 'wasm'})", f"/bundles/{manifest['bundle_id']}/")
        listed = page.evaluate("() => window.engine.cachedBundles()")
        deleted_others = page.evaluate("() => window.engine.deleteOtherCachedBundles()")
        after_others = page.evaluate("() => window.engine.cachedBundles()")
        deleted = page.evaluate("(id) => window.engine.deleteCachedBundle(id)", second["bundle_id"])
        deleted_again = page.evaluate("(id) => window.engine.deleteCachedBundle(id)", second["bundle_id"])
        after_all = page.evaluate("() => window.engine.cachedBundles()")
        refused = page.evaluate("""async () => {
            try { await window.engine.deleteCachedBundle("../etc"); } catch (e) { return e.body; }
        }""")
        log.take()
        page.evaluate("(url) => window.engine.load(url, {device: 'wasm'})", f"/bundles/{first['bundle_id']}/")
        fetched_after_delete = log.take()
        answer = page.evaluate("""() => window.engine.chat.completions.create(
            {messages: [{role: "user", content: "What is the capital of France?"}], temperature: 0, max_tokens: 1})""")
        page.click("#cached-models summary")  # the page's own list of what this browser caches
        page.wait_for_selector("#cached-list li")
        shown = page.inner_text("#cached-list li")
        page.click("#cached-list li button")
        page.wait_for_selector("#cached-empty", state="visible")
        left = page.evaluate("() => window.engine.cachedBundles()")
    finally:
        context.close()
    print(f"\ncached: {listed}")
    expected = sorted([{"bundleId": m["bundle_id"], "model": m["model"], "quantization": m["quantization"],
                        "bytes": loaded_bytes(m)} for m in (first, second)], key=lambda b: b["bundleId"])
    assert listed == expected
    assert deleted_others == [first["bundle_id"]]
    assert after_others == [b for b in expected if b["bundleId"] == second["bundle_id"]]
    assert (deleted, deleted_again, after_all) == (True, False, [])
    assert refused["type"] == "invalid_request_error" and refused["param"] == "bundleId"
    # deleted means gone: the first bundle's files and manifest come from the server again
    prefix = f"/bundles/{first['bundle_id']}/"
    assert fetched_after_delete == sorted(prefix + f["path"] for f in first["files"] + [{"path": "manifest.json"}]
                                          if not f["path"].endswith(NOT_LOADED))
    assert answer["choices"][0]["message"]["content"] == "The"
    assert shown.startswith(f"{first['model']} · {first['quantization']} · {loaded_bytes(first) / 1e6:.1f} MB")
    assert left == []
