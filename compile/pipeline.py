"""The compile pipeline, stage by stage: fetch -> convert -> quantize -> build -> link -> write."""
import hashlib
import importlib.metadata
import json
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from compile.build import build, export_model
from compile.bundle import Bundle, write_bundle
from compile.chat_config import chat_config
from compile.layers import sliding_window
from compile.options import CompileOptions
from compile.quantization import DEFAULT_QUANTIZATION, FLOAT_SOURCE_QUANTIZATION, Quantization, get_quantization
from compile.registry import architecture_for_gguf, architecture_for_hf, get_architecture
from compile.toolchain import emcc_version, wasm32_relaxed_target, wasm32_target, wasm_fcompile, webgpu_target
from models.convert import load_fp32_model
from models.errors import UnsupportedModelError
from models.fetch import resolve_gguf
from models.huggingface import generation_eos_ids, is_hf_checkpoint, read_hf_checkpoint
from models.gguf_file import gguf_value, open_gguf
from models.llama import LlamaConfig, check_weight_shapes
from models.tokenizer import token_postproc_method, write_hf_tokenizer_files, write_tokenizer_files

OptLevel = Literal["release", "fast"]
LINK_FLAGS = {"release": "-O3", "fast": "-O1"}
STAGES = ("fetch", "convert", "quantize", "build", "link", "write")
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"]
# One model library per device kind; the browser engine picks one (WebGPU, or the CPU where it is missing, with
# relaxed SIMD where the browser has it).
LIBRARY_TARGETS = {"webgpu": webgpu_target, "wasm32": wasm32_target, "wasm32-relaxed": wasm32_relaxed_target}


@dataclass
class StageClock:
    """Announces each stage as it starts and keeps how long each took."""

    report: Callable[[str], None]
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, what: str):
        self.report(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}: {what}")
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start


@dataclass(frozen=True)
class CompileResult:
    bundle: Bundle
    stage_seconds: dict[str, float]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def model_name(model: str) -> str:
    """Registry names stay; a local GGUF path becomes its lower-cased file stem, a Hugging Face checkpoint its
    lower-cased directory name."""
    if model.endswith(".gguf"):
        return Path(model).stem.lower()
    return Path(model).resolve().name.lower() if is_hf_checkpoint(Path(model)) else model


def default_quantization(model: str) -> str:
    """A GGUF's own blocks where the model is a GGUF; a Hugging Face checkpoint's float weights quantized."""
    return FLOAT_SOURCE_QUANTIZATION if is_hf_checkpoint(Path(model)) else DEFAULT_QUANTIZATION


def default_output(model: str, quantization: str) -> Path:
    return Path("bundles") / f"{model_name(model)}-{quantization}"


def _write_progress(report: Callable[[str], None]):
    last_decile = -1

    def on_progress(name: str, done: int, total: int) -> None:
        nonlocal last_decile
        decile = done * 10 // total if total else 0
        if decile > last_decile:
            last_decile = decile
            report(f"      {done / 2**20:7.1f} / {total / 2**20:.1f} MB ({name})")

    return on_progress


def load_source(gguf: Path, quant: Quantization) -> tuple[LlamaConfig, dict]:
    """The config and weights in the kind `quant` starts from: the GGUF's own blocks, or float32 (cached for
    Llama), read by the architecture the file names."""
    arch = architecture_for_gguf(gguf_value(open_gguf(gguf), "general.architecture"))
    if arch.name == "llama" and not quant.keeps_source_blocks:
        return load_fp32_model(gguf)
    return arch.read_gguf(gguf, quant.keeps_source_blocks)


def load_hf_source(directory: Path) -> tuple[LlamaConfig, dict]:
    """The config and float32 weights of a Hugging Face checkpoint, read by the architecture its model_type names."""
    hf_config, weights = read_hf_checkpoint(directory)
    arch = architecture_for_hf(hf_config.get("model_type"))
    try:
        config = arch.config_from_hf(hf_config)
    except KeyError as e:
        raise UnsupportedModelError(f"{directory / 'config.json'} has no {e.args[0]!r}") from None
    check_weight_shapes(arch.weight_shapes(config), weights)
    return config, weights


def compile_bundle(model: str, *, gguf: Path | None = None, quantization: str | None = None,
                   output: Path | None = None,
                   options: CompileOptions = CompileOptions(), opt_level: OptLevel = "release",
                   libraries: tuple[str, ...] = tuple(LIBRARY_TARGETS),
                   report: Callable[[str], None] = _stderr) -> CompileResult:
    """`model` is a registry name, the path of a local GGUF file or of a Hugging Face checkpoint directory; `gguf`
    overrides where a registry model's file is. `quantization` defaults to default_quantization(model).
    `libraries`: which model libraries (LIBRARY_TARGETS' keys) the bundle gets; all of them by default (a test that
    runs one saves building the others: each takes minutes for a large vocabulary)."""
    unknown = [device for device in libraries if device not in LIBRARY_TARGETS]
    if unknown or not libraries:
        raise ValueError(f"libraries must be some of {', '.join(LIBRARY_TARGETS)} (got {', '.join(libraries)})")
    checkpoint = Path(model) if gguf is None and is_hf_checkpoint(Path(model)) else None
    quantization = quantization or default_quantization(model)
    quant = get_quantization(quantization)
    if checkpoint and quant.keeps_source_blocks:
        raise ValueError(f"{model} holds float weights, not GGUF blocks: choose a quantization other than "
                         f"{quantization}")
    name = model_name(model)
    output = output or default_output(model, quantization)
    clock = StageClock(report)
    targets = {device: LIBRARY_TARGETS[device]() for device in libraries}
    library_files = {device: f"{name}-{quantization}-{device}.wasm" for device in targets}
    with tempfile.TemporaryDirectory(prefix="tabllm-compile-") as tmp:
        work = Path(tmp)
        with clock.stage("fetch", f"{model}"):
            gguf = None if checkpoint else resolve_gguf(gguf or model)
        source = "the GGUF's own blocks" if quant.keeps_source_blocks else "float32 weights"
        origin = "checkpoint" if checkpoint else "GGUF"
        with clock.stage("convert", f"{origin} -> {source}, tokenizer.json, chat template"):
            if checkpoint:
                config, weights = load_hf_source(checkpoint)
                write_hf_tokenizer_files(checkpoint, work)
            else:
                config, weights = load_source(gguf, quant)
                write_tokenizer_files(gguf, work)
            tokenizer_config = json.loads((work / "tokenizer_config.json").read_text(encoding="utf-8"))
            postproc = token_postproc_method(json.loads((work / "tokenizer.json").read_text(encoding="utf-8")))
            stop_ids = [tokenizer_config["eos_token_id"]]
            # the checkpoint's own generation stop tokens too, or the GGUF's end-of-turn ones
            more_stop_ids = generation_eos_ids(checkpoint) if checkpoint else gguf_turn_end_ids(gguf)
            stop_ids += [i for i in more_stop_ids if i not in stop_ids]
        window = sliding_window(config, options)
        if window and options.prefill_chunk_size > window:
            report(f"prefill chunk: {options.prefill_chunk_size} -> {window} tokens, the model's sliding window (TVM's "
                   f"attention among a chunk's own tokens has no window)")
            options = replace(options, prefill_chunk_size=window)
        with clock.stage("quantize", f"weights -> {quantization}"):
            quantized = quant.quantize(get_architecture(config.model_type).params(config, weights))
        with clock.stage("build", f"Relax model ({quantization}) -> the {', '.join(targets)} libraries' code"):
            exports = {device: export_model(config, options, quantization, quantized.formats, target)
                       for device, target in targets.items()}
            executables = {device: build(exported) for device, exported in exports.items()}
        with clock.stage("link", f"emcc {LINK_FLAGS[opt_level]} -> {', '.join(library_files.values())}"):
            for device, executable in executables.items():
                executable.export_library(str(work / library_files[device]),
                                          fcompile=wasm_fcompile(targets[device], LINK_FLAGS[opt_level]))
        metadata = next(iter(exports.values())).metadata
        for exported in exports.values():  # every library reads the same weight shards
            _check_params_match(quantized.arrays, exported.metadata["params"])
        with clock.stage("write", f"bundle -> {output}"):
            bundle = write_bundle(
                output, model=name, quantization=quantization, params=quantized.arrays,
                chat_config=chat_config(config, metadata, tokenizer_config, TOKENIZER_FILES, stop_ids, postproc),
                files={f: work / f for f in [*TOKENIZER_FILES, *library_files.values()]},
                build=_build_info(targets, metadata, options, opt_level),
                on_progress=_write_progress(report),
            )
    return CompileResult(bundle, clock.seconds)


# The texts of the tokens llama.cpp ends a generation at whatever the file's keys say (llama-vocab.cpp): llama.cpp's
# converter names no end-of-turn token for Phi-3, whose turns end with <|end|>.
END_OF_TURN_TEXTS = frozenset(["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
                               "_<EOT>", "<\uff5cend\u2581of\u2581sentence\uff5c>"])


def gguf_turn_end_ids(gguf: Path) -> list[int]:
    """The GGUF's end-of-turn and end-of-message tokens where it names them, then the tokens llama.cpp recognises
    as ending a turn by their text."""
    reader = open_gguf(gguf)
    named = [gguf_value(reader, f"tokenizer.ggml.{key}_token_id", None) for key in ("eot", "eom")]
    ids = [i for i in named if i is not None]
    tokens = gguf_value(reader, "tokenizer.ggml.tokens")
    return ids + [i for i, text in enumerate(tokens) if text in END_OF_TURN_TEXTS and i not in ids]


def _check_params_match(params: list, declared: list[dict]) -> None:
    """The converted weights must be exactly what the compiled library will ask for, by name and shape."""
    got = {name: (list(array.shape), str(array.dtype)) for name, array in params}
    want = {p["name"]: (p["shape"], p["dtype"]) for p in declared}
    if got != want:
        mismatched = sorted(n for n in got.keys() | want.keys() if got.get(n) != want.get(n))
        raise RuntimeError(f"converted weights do not match the model's parameters: {mismatched[:5]}")


def compiler_digest() -> str:
    """A hash of every source the compiler builds a bundle from (the Python of compile/ and models/, the runtime's
    C and headers): bundles built by another compiler differ in their kernels even where the versions agree."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(p for folder in ("compile", "models") for p in (root / folder).rglob("*")
                       if p.suffix in (".py", ".c", ".h")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _build_info(targets: dict, metadata: dict, options: CompileOptions, opt_level: OptLevel) -> dict:
    return {
        "tabllm": importlib.metadata.version("tabllm"),
        "compiler_digest": compiler_digest(),
        "apache-tvm": importlib.metadata.version("apache-tvm"),
        "apache-tvm-ffi": importlib.metadata.version("apache-tvm-ffi"),
        "emcc": emcc_version(),
        "targets": {device: str(target) for device, target in targets.items()},
        "quantization": metadata["quantization"],
        "weight_formats": metadata["weight_formats"],
        "context_window_size": options.context_window_size,
        "prefill_chunk_size": options.prefill_chunk_size,
        "opt_level": opt_level,
        "link_flags": LINK_FLAGS[opt_level],
    }
