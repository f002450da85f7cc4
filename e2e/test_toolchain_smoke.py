"""The whole toolchain on a tiny model: Relax nn.Module -> WebGPU (wasm32 host) and wasm32 CPU libraries ->
linked with the cached runtime -> served over HTTP -> run by tvmjs in headless Chromium -> equals numpy."""
import json
from pathlib import Path

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from tvm import relax
from tvm.relax.frontend import nn

from compile.toolchain import wasm32_target, wasm_fcompile, webgpu_target

IN_FEATURES, HIDDEN, OUT_FEATURES = 16, 32, 8
BATCH_SIZES = (1, 5, 67)  # the batch dimension is symbolic: one library serves every size


class TinyMLP(nn.Module):
    def __init__(self):
        self.fc1 = nn.Linear(IN_FEATURES, HIDDEN, bias=True)
        self.fc2 = nn.Linear(HIDDEN, OUT_FEATURES, bias=True)

    def forward(self, x: nn.Tensor):
        return self.fc2(nn.relu(self.fc1(x)))


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """The TinyMLP built for both browser targets; weights stay function arguments."""
    out = tmp_path_factory.mktemp("smoke-libs")
    mod, params = TinyMLP().export_tvm(spec={"forward": {"x": nn.spec.Tensor(["n", IN_FEATURES], "float32")}})
    # The CPU library links as release bundles link it (-O3 runs the optimizations a -O1 test link skips).
    for name, target, opt_level in [("mlp-webgpu.wasm", webgpu_target(), "-O1"),
                                    ("mlp-wasm32.wasm", wasm32_target(), "-O3")]:
        executable = relax.build(mod, target=target, system_lib=True)
        executable.export_library(str(out / name), fcompile=wasm_fcompile(target, opt_level))
    return out, [name for name, _ in params]


@pytest.fixture(scope="module")
def smoke_url(libraries, serve, web_dist):
    libs_dir, _ = libraries
    app = Starlette(routes=[
        Mount("/static", StaticFiles(directory=web_dist)),
        Mount("/libs", StaticFiles(directory=libs_dir)),
        Mount("/", StaticFiles(directory=Path(__file__).parent / "pages")),
    ])
    return serve(app) + "/tvmjs_smoke.html"


def reference_mlp(x, w1, b1, w2, b2):
    return np.maximum(x @ w1.T + b1, 0.0) @ w2.T + b2


@pytest.mark.parametrize("device, library", [("webgpu", "mlp-webgpu.wasm"), ("cpu", "mlp-wasm32.wasm")])
def test_tiny_model_in_chromium_matches_numpy(page, smoke_url, libraries, device, library, record_property):
    _, param_names = libraries
    assert param_names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    rng = np.random.default_rng(0)
    weights = [
        (rng.standard_normal((HIDDEN, IN_FEATURES)) * 0.3).astype(np.float32),
        rng.standard_normal(HIDDEN).astype(np.float32),
        (rng.standard_normal((OUT_FEATURES, HIDDEN)) * 0.3).astype(np.float32),
        rng.standard_normal(OUT_FEATURES).astype(np.float32),
    ]
    inputs = [rng.standard_normal((n, IN_FEATURES)).astype(np.float32) for n in BATCH_SIZES]
    as_spec = lambda a: {"shape": list(a.shape), "data": a.ravel().tolist()}

    page.goto(smoke_url)
    result = page.evaluate("spec => window.runTvmjs(spec)", {
        "wasmUrl": f"/libs/{library}", "device": device, "func": "forward",
        "params": [as_spec(w) for w in weights], "inputs": [as_spec(x) for x in inputs],
    })

    if device == "webgpu":
        adapter = result["adapter"]
        record_property("webgpu_adapter", json.dumps(adapter))
        print(f"WebGPU adapter: {adapter}")
        assert adapter["vendor"] or adapter["architecture"] or adapter["description"], adapter
    for x, out in zip(inputs, result["outputs"]):
        expected = reference_mlp(x, *weights)
        assert out["shape"] == list(expected.shape)
        np.testing.assert_allclose(np.array(out["data"]).reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)
