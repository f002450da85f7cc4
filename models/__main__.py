"""python -m models: fetch a known model, show its config, convert it to cached float32 weights."""
import argparse
import dataclasses
import logging
import sys
import time

from models.convert import fp32_cache_dir, load_fp32_model
from models.errors import ModelError
from models.fetch import fetch_gguf, resolve_gguf
from models.files import sha256_file
from models.gguf_file import gguf_value, open_gguf
from models.llama import LlamaConfig
from models.registry import MODELS, get_model


def cmd_fetch(args) -> None:
    start = time.perf_counter()
    path = fetch_gguf(get_model(args.model))
    print(f"{args.model}: {path} ({time.perf_counter() - start:.1f} s)")


def cmd_info(args) -> None:
    if args.model in MODELS:
        for key, value in dataclasses.asdict(get_model(args.model)).items():
            print(f"{key}: {value}")
    path = resolve_gguf(args.model)
    print(f"gguf: {path}")
    reader = open_gguf(path)
    arch = gguf_value(reader, "general.architecture")
    if arch == "llama":
        config = LlamaConfig.from_gguf(reader).to_dict()
    else:  # the compiler reads other architectures (compile/<arch>/): here, the GGUF's own keys
        config = {key: gguf_value(reader, key) for key in reader.fields if key.startswith(f"{arch}.")}
    config["tokenizer"] = gguf_value(reader, "tokenizer.ggml.model")
    config["chat_template"] = "yes" if gguf_value(reader, "tokenizer.chat_template", None) else "none (a base model)"
    for key, value in config.items():
        print(f"{key}: {value}")


def cmd_convert(args) -> None:
    path = resolve_gguf(args.model)
    start = time.perf_counter()
    config, weights = load_fp32_model(path)
    params = sum(w.size for w in weights.values())
    print(f"{params / 1e6:.1f}M float32 parameters in {fp32_cache_dir(sha256_file(path))} "
          f"({time.perf_counter() - start:.1f} s)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    fetch = commands.add_parser("fetch", help="download a known model's GGUF file into the cache (verified)")
    fetch.add_argument("model", help=f"one of: {', '.join(MODELS)}")
    fetch.set_defaults(run=cmd_fetch)
    for name, run, help_text in [("info", cmd_info, "print where a model comes from and its config"),
                                 ("convert", cmd_convert, "dequantize a model to float32 weights in the cache")]:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("model", help="a known model name or the path of a .gguf file")
        command.set_defaults(run=run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.run(args)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
