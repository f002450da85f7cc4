"""The logits helpers of the model library ABI (compile/logits.py), built for the native CPU and run through the
Relax VM against independent numpy implementations of their semantics; plus a compile-and-link check for the
browser targets (WebGPU kernels + wasm32 host, and wasm32 CPU).

The CPU and GPU variants share each kernel's body (only the loop kinds differ), so these numeric tests cover
the GPU kernels' logic too; running them on WebGPU in Chromium is done by hand (see compile/logits.py).
"""
import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.relax.frontend import nn

from compile.logits import FLOAT32_LOWEST, LOGITS_FUNCTIONS, add_logits_functions
from compile.toolchain import wasm32_target, wasm_fcompile, webgpu_target

CPU = tvm.target.Target({"kind": "llvm"})
INPLACE = ("apply_penalty_inplace", "apply_logit_bias_inplace", "apply_bitmask_inplace")


class TinyHead(nn.Module):
    """Stands in for an exported model: the helpers are added next to its functions."""

    def __init__(self):
        self.proj = nn.Linear(8, 16, bias=False)

    def forward(self, x: nn.Tensor):
        return self.proj(x)


@pytest.fixture(scope="module")
def vm():
    mod, _ = TinyHead().export_tvm(spec={"forward": {"x": nn.spec.Tensor([1, 8], "float32")}})
    executable = relax.build(add_logits_functions(mod, CPU), target=CPU)
    return relax.VirtualMachine(executable, tvm.cpu())


def call(vm, name, *args):
    """A Relax helper (new tensors out)."""
    return vm[name](*[tvm.runtime.tensor(a) for a in args])


def call_inplace(vm, name, logits, *args):
    """An in-place TIR helper, found like tvmjs's vm.getFunction does: through the VM's imports."""
    logits_dev = tvm.runtime.tensor(logits)
    result = vm.module.get_function(name, query_imports=True)(logits_dev, *[tvm.runtime.tensor(a) for a in args])
    assert result is None
    return logits_dev.numpy()


# ---------------------------------------------------------------- independent numpy references

def ref_softmax(logits, temperature):
    out = np.empty(logits.shape, np.float64)
    for b in range(logits.shape[0]):
        for p in range(logits.shape[1]):
            x = logits[b, p].astype(np.float64)
            if temperature[b] <= 1e-5:
                hot = (x == x.max()).astype(np.float64)
                out[b, p] = hot / hot.sum()
            else:
                e = np.exp((x - x.max()) / np.float64(temperature[b]))
                out[b, p] = e / e.sum()
    return out


def ref_top_p_positions(sorted_row, top_p):
    """(k, float64 cumsum) for a sorted row: the smallest prefix whose cumsum reaches top_p, at least one."""
    cum = np.cumsum(sorted_row.astype(np.float64))
    reached = np.nonzero(cum >= top_p)[0]
    k = int(reached[0]) + 1 if len(reached) else len(sorted_row)
    return k, cum


def ref_penalty(logits, seq_ids, pos2seq_id, token_ids, token_cnt, penalties):
    out = logits.copy()
    for j in range(len(token_ids)):
        s = pos2seq_id[j]
        row, tok = seq_ids[s], token_ids[j]
        x = np.float32(out[row, tok] - (penalties[s, 0] + np.float32(token_cnt[j]) * penalties[s, 1]))
        out[row, tok] = x * penalties[s, 2] if x < 0 else x / penalties[s, 2]
    return out


def softmax_probs(rng, batch, vocab, scale=3.0):
    x = rng.standard_normal((batch, vocab)) * scale
    p = np.exp(x - x.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- the module

def test_all_six_helpers_are_exported_next_to_the_model(vm):
    for name in LOGITS_FUNCTIONS:
        assert vm.module.get_function(name, query_imports=True) is not None, name
    out = vm["forward"](tvm.runtime.tensor(np.ones((1, 8), np.float32)),
                        tvm.runtime.tensor(np.ones((16, 8), np.float32)))
    np.testing.assert_allclose(out.numpy(), np.full((1, 16), 8.0))


def test_adding_twice_is_refused():
    mod = add_logits_functions(tvm.IRModule(), CPU)
    with pytest.raises(ValueError, match="already defines"):
        add_logits_functions(mod, CPU)


# ---------------------------------------------------------------- softmax_with_temperature

@pytest.mark.parametrize("vocab", [1, 7, 1000, 49152])
def test_softmax_matches_numpy_per_sequence_temperature(vm, vocab):
    rng = np.random.default_rng(vocab)
    logits = (rng.standard_normal((3, 2, vocab)) * 5).astype(np.float32)
    temperature = np.array([0.7, 1.0, 2.5], np.float32)
    probs = call(vm, "softmax_with_temperature", logits, temperature).numpy()
    assert probs.shape == logits.shape and probs.dtype == np.float32
    np.testing.assert_allclose(probs, ref_softmax(logits, temperature), rtol=2e-5, atol=1e-8)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("temperature", [0.0, 1e-6, 1e-5])
def test_zero_or_tiny_temperature_is_greedy_without_nan(vm, temperature):
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((2, 1, 5000)) * 10).astype(np.float32)
    logits[1, 0, [10, 4000]] = logits[1].max() + 1  # a tie for the maximum: half each
    probs = call(vm, "softmax_with_temperature", logits, np.full(2, temperature, np.float32)).numpy()
    expected = np.zeros_like(probs)
    expected[0, 0, logits[0, 0].argmax()] = 1.0
    expected[1, 0, [10, 4000]] = 0.5
    np.testing.assert_array_equal(probs, expected)


def test_temperature_just_above_greedy_threshold_stays_finite(vm):
    logits = np.array([[[3.0, 2.9999, -50.0, 1e4, -1e4]]], np.float32)
    probs = call(vm, "softmax_with_temperature", logits, np.array([2e-5], np.float32)).numpy()
    np.testing.assert_array_equal(probs, [[[0, 0, 0, 1, 0]]])


def test_greedy_threshold_is_inclusive(vm):
    logits = np.array([[[0.0, 5e-6]], [[0.0, 5e-6]]], np.float32)
    probs = call(vm, "softmax_with_temperature", logits, np.array([1e-5, 2e-5], np.float32)).numpy()
    np.testing.assert_array_equal(probs[0, 0], [0.0, 1.0])
    np.testing.assert_allclose(probs[1, 0], ref_softmax(logits[1:], np.array([2e-5]))[0, 0], rtol=1e-3)


def test_masked_logits_get_zero_probability_and_an_all_masked_row_is_uniform(vm):
    logits = np.array([[[1.0, FLOAT32_LOWEST, 2.0, -np.inf]], [[-np.inf] * 4]], np.float32)
    temperature = np.array([0.5, 0.5], np.float32)
    probs = call(vm, "softmax_with_temperature", logits, temperature).numpy()
    e = np.exp(np.array([1.0, 2.0]) / 0.5 - 4.0)
    np.testing.assert_allclose(probs[0, 0], [e[0] / e.sum(), 0, e[1] / e.sum(), 0], rtol=1e-6)
    np.testing.assert_array_equal(probs[1, 0], [0.25] * 4)


# ---------------------------------------------------------------- argsort_probs

@pytest.mark.parametrize("vocab", [1, 5, 16, 17, 33, 1000, 49152])
def test_argsort_is_a_stable_descending_sort(vm, vocab):
    rng = np.random.default_rng(vocab)
    probs = softmax_probs(rng, 3, vocab)
    sorted_probs, sorted_indices = call(vm, "argsort_probs", probs)
    sorted_probs, sorted_indices = sorted_probs.numpy(), sorted_indices.numpy()
    assert sorted_indices.dtype == np.int32
    np.testing.assert_array_equal(sorted_indices, np.argsort(-probs, axis=1, kind="stable"))
    np.testing.assert_array_equal(sorted_probs, np.take_along_axis(probs, sorted_indices, axis=1))


@pytest.mark.parametrize("vocab", [100, 4099])
def test_argsort_keeps_token_order_among_equal_probabilities(vm, vocab):
    rng = np.random.default_rng(7)
    probs = (rng.integers(0, 4, (2, vocab)) / 8).astype(np.float32)  # many ties, zeros included
    sorted_probs, sorted_indices = call(vm, "argsort_probs", probs)
    np.testing.assert_array_equal(sorted_indices.numpy(), np.argsort(-probs, axis=1, kind="stable"))
    np.testing.assert_array_equal(sorted_probs.numpy(), -np.sort(-probs, axis=1))


# ---------------------------------------------------------------- sample_with_top_p

def sample(vm, sorted_probs, sorted_indices, uniform, rows, top_p):
    return call(vm, "sample_with_top_p", sorted_probs, sorted_indices, np.asarray(uniform, np.float32),
                np.asarray(rows, np.int32), np.asarray(top_p, np.float32)).numpy()


@pytest.fixture(scope="module")
def sorted_rows():
    """Two sorted distributions over 3000 tokens: a peaked one and a flat one (cumsums straddle chunks)."""
    rng = np.random.default_rng(3)
    probs = np.concatenate([softmax_probs(rng, 1, 3000, scale=3.0), softmax_probs(rng, 1, 3000, scale=0.3)])
    order = np.argsort(-probs, axis=1, kind="stable").astype(np.int32)
    return np.take_along_axis(probs, order, axis=1), order


@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.99])
def test_top_p_picks_the_token_whose_renormalised_interval_holds_u(vm, sorted_rows, top_p):
    """u at the middle of each kept token's interval must give exactly that token (no rounding ambiguity)."""
    sorted_probs, order = sorted_rows
    for row in range(2):
        k, cum = ref_top_p_positions(sorted_probs[row], top_p)
        picks = np.unique(np.linspace(0, k - 1, min(k, 40)).astype(int))
        lower = np.concatenate([[0.0], cum])[picks]
        u = (lower + cum[picks]) / 2 / cum[k - 1]
        # top_p is per row: the other row gets 1 so the two are told apart
        got = sample(vm, sorted_probs, order, u, np.full(len(u), row), np.where(np.arange(2) == row, top_p, 1.0))
        np.testing.assert_array_equal(got, order[row, picks])


def test_top_p_random_uniforms_land_inside_the_renormalised_prefix(vm, sorted_rows):
    sorted_probs, order = sorted_rows
    rng = np.random.default_rng(5)
    u = rng.random(500).astype(np.float32)
    rows = rng.integers(0, 2, 500)
    top_p = np.array([0.8, 0.95], np.float32)
    got = sample(vm, sorted_probs, order, u, rows, top_p)
    for i in range(500):
        k, cum = ref_top_p_positions(sorted_probs[rows[i]], top_p[rows[i]])
        j = int(np.nonzero(order[rows[i]] == got[i])[0][0])
        assert j < k
        target = u[i] * cum[k - 1]
        assert (j == 0 or cum[j - 1] <= target + 1e-6) and (cum[j] > target - 1e-6), (i, j, k)


def test_top_p_one_keeps_every_token_with_probability(vm):
    probs = np.zeros((1, 1000), np.float32)
    probs[0, :600] = 1 / 600  # the 400 zero tokens must never be picked
    order = np.arange(1000, dtype=np.int32)[None]
    got = sample(vm, probs, order, [0.0, 0.5, 0.99999994], [0, 0, 0], [1.0])
    assert got[0] == 0 and 290 <= got[1] <= 310 and 590 <= got[2] < 600


def test_exact_boundaries_top_p_reached_and_u_on_a_cumsum(vm):
    """Exact binary fractions: cumsum [0.5, 0.75, 1.0]. Reaching top_p exactly ends the prefix; the sampled
    interval of token j is [c[j-1], c[j]) of the renormalised cumsum."""
    sorted_probs = np.array([[0.5, 0.25, 0.25, 0.0]], np.float32)
    order = np.array([[3, 1, 0, 2]], np.int32)
    u = [0.99, 0.0, 0.5, 0.75, 0.6666666, 0.6666667]
    np.testing.assert_array_equal(sample(vm, sorted_probs, order, u[:1], [0], [0.75]), [1])  # k = 2, not 3
    np.testing.assert_array_equal(sample(vm, sorted_probs, order, u[:4], [0] * 4, [1.0]), [0, 3, 1, 0])
    # top_p 0.75: renormalised cumsum [2/3, 1]
    np.testing.assert_array_equal(sample(vm, sorted_probs, order, u[4:], [0, 0], [0.75]), [3, 1])


def test_exact_boundary_at_the_end_of_a_summation_chunk(vm):
    """1/512 each: the cumsum is exactly 0.5 after 256 tokens, where the kernel's chunk sums (256) end."""
    sorted_probs = np.full((1, 512), 1 / 512, np.float32)
    order = np.arange(512, dtype=np.int32)[::-1].copy()[None]
    np.testing.assert_array_equal(sample(vm, sorted_probs, order, [0.999], [0], [0.5]), [order[0, 255]])
    np.testing.assert_array_equal(sample(vm, sorted_probs, order, [0.5], [0], [1.0]), [order[0, 256]])


@pytest.mark.parametrize("top_p", [1e-5, 0.0, -1.0])
def test_tiny_or_nonpositive_top_p_is_argmax(vm, sorted_rows, top_p):
    sorted_probs, order = sorted_rows
    got = sample(vm, sorted_probs, order, [0.0, 0.5, 0.99999994, 0.7], [0, 0, 0, 1], [top_p, top_p])
    np.testing.assert_array_equal(got, order[[0, 0, 0, 1], 0])


def test_samples_map_to_their_rows(vm):
    vocab = 70
    probs = np.zeros((3, vocab), np.float32)
    probs[np.arange(3), [5, 17, 69]] = 1.0  # one certain token per row
    order = np.argsort(-probs, axis=1, kind="stable").astype(np.int32)
    sorted_probs = np.take_along_axis(probs, order, axis=1)
    got = sample(vm, sorted_probs, order, [0.1, 0.9, 0.5, 0.3], [2, 0, 2, 1], [0.9, 1.0, 0.5])
    np.testing.assert_array_equal(got, [69, 5, 69, 17])


# ---------------------------------------------------------------- the in-place helpers

@pytest.mark.parametrize("vocab", [1000, 49152])
def test_bitmask_masks_cleared_bits_of_the_listed_rows_only(vm, vocab):
    rng = np.random.default_rng(vocab)
    logits = rng.standard_normal((4, vocab)).astype(np.float32)
    words = (vocab + 31) // 32
    bitmask = rng.integers(-2**31, 2**31, (4, words), dtype=np.int64).astype(np.int32)
    bitmask[3, 0] = -1  # all 32 bits set, bit 31 (the sign bit) included
    bitmask[3, 1] = np.int32(-2**31)  # only bit 31
    seq_ids = np.array([3, 1], np.int32)
    got = call_inplace(vm, "apply_bitmask_inplace", logits, seq_ids, bitmask)
    expected = logits.copy()
    bits = (bitmask.view(np.uint32)[:, np.arange(vocab) // 32] >> (np.arange(vocab) % 32).astype(np.uint32)) & 1
    for row in seq_ids:
        expected[row, bits[row] == 0] = np.float32(FLOAT32_LOWEST)
    np.testing.assert_array_equal(got, expected)
    assert (got[3, :32] == logits[3, :32]).all() and (got[3, 32:63] == np.float32(FLOAT32_LOWEST)).all()
    assert got[3, 63] == logits[3, 63]


def test_penalties_follow_presence_frequency_then_repetition(vm):
    rng = np.random.default_rng(11)
    vocab = 500
    logits = (rng.standard_normal((3, vocab)) * 4).astype(np.float32)
    seq_ids = np.array([2, 0], np.int32)  # sequence 0 lives in row 2, sequence 1 in row 0
    pos2seq_id = np.array([0] * 6 + [1] * 5, np.int32)
    token_ids = np.concatenate([rng.choice(vocab, 6, replace=False),
                                rng.choice(vocab, 5, replace=False)]).astype(np.int32)
    token_cnt = rng.integers(1, 6, 11).astype(np.int32)
    penalties = np.array([[0.5, 0.25, 1.3], [-0.4, 0.1, 0.8]], np.float32)
    got = call_inplace(vm, "apply_penalty_inplace", logits, seq_ids, pos2seq_id, token_ids, token_cnt, penalties)
    expected = ref_penalty(logits, seq_ids, pos2seq_id, token_ids, token_cnt, penalties)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert (got[1] == logits[1]).all()  # row 1 belongs to no sequence
    assert (got != logits).sum() == 11


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits(vm):
    logits = np.array([[2.6, -2.6, 1.0, 0.0]], np.float32)
    got = call_inplace(vm, "apply_penalty_inplace", logits, np.zeros(1, np.int32), np.zeros(3, np.int32),
                       np.array([0, 1, 3], np.int32), np.array([1, 1, 1], np.int32),
                       np.array([[0.0, 0.0, 1.3]], np.float32))
    np.testing.assert_allclose(got, [[2.0, -3.38, 1.0, 0.0]], rtol=1e-6)


def test_logit_bias_adds_to_the_listed_positions(vm):
    rng = np.random.default_rng(13)
    logits = rng.standard_normal((2, 300)).astype(np.float32)
    pos2seq_id = np.array([0, 1, 1, 0], np.int32)
    token_ids = np.array([7, 7, 299, 0], np.int32)
    bias = np.array([5.0, -100.0, 2.5, -1.0], np.float32)
    got = call_inplace(vm, "apply_logit_bias_inplace", logits, pos2seq_id, token_ids, bias)
    expected = logits.copy()
    np.add.at(expected, (pos2seq_id, token_ids), bias)
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- the browser targets (compile and link only)

@pytest.mark.parametrize("target_name", ["webgpu", "wasm32"])
def test_helpers_build_and_link_for_the_browser(target_name, tmp_path):
    target = webgpu_target() if target_name == "webgpu" else wasm32_target()
    mod, _ = TinyHead().export_tvm(spec={"forward": {"x": nn.spec.Tensor([1, 8], "float32")}})
    executable = relax.build(add_logits_functions(mod, target), target=target, system_lib=True)
    output = tmp_path / f"logits-{target_name}.wasm"
    executable.export_library(str(output), fcompile=wasm_fcompile(target, "-O1"))
    assert output.read_bytes()[:4] == b"\0asm"
    if target_name == "webgpu":
        kernels = _webgpu_kernels(executable.mod)
        for name in ("apply_penalty_inplace", "apply_logit_bias_inplace", "apply_bitmask_inplace",
                     "softmax_chunk_stats", "softmax_row_stats", "softmax_normalize", "argsort_desc",
                     "top_p_chunk_sums", "top_p_sample"):
            ours = [source for kernel, source in kernels.items() if kernel.startswith(f"{name}_kernel")]
            assert ours, f"no WGSL kernel for {name}"
            # SwiftShader (WebGPU without a GPU) runs barrier-heavy kernels 10-100x slower: none here.
            for source in ours:
                assert "workgroupBarrier" not in source and "var<workgroup>" not in source, name
        assert len([k for k in kernels if k.startswith("argsort_desc_kernel")]) == 4  # runs, 2 merge directions x 2


def _webgpu_kernels(module) -> dict[str, str]:
    """{kernel name: WGSL source} of the webgpu modules under `module`."""
    if module.kind != "webgpu":
        return {k: v for m in module.imports for k, v in _webgpu_kernels(m).items()}
    sections = module.inspect_source().split("// Function: ")[1:]
    return {section.split()[0]: section for section in sections}
