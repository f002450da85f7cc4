"""The wheel carries the built browser files, so that an installed tabllm serves the chat page and runs
`python -m bench` from any directory: web/dist (the engine and the page, `npm run build --prefix web`) as
static_server/web, and wllama's ESM build (the bench's llama.cpp baseline, from npm) as bench/wllama. Build them
first (`make setup`). An editable install reads them from the checkout instead, so a rebuild is served at once."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BROWSER_FILES = {  # what the wheel needs: where the checkout has it
    "static_server/web": ROOT / "web" / "dist",
    "bench/wllama": ROOT / "web" / "node_modules" / "@wllama" / "wllama" / "esm",
}


class BuildPyWithBrowserFiles(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        for target, source in BROWSER_FILES.items():
            if not source.is_dir():
                raise SystemExit(f"{source} is missing: run `make setup` before building the wheel")
            shutil.copytree(source, Path(self.build_lib) / target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.map"))


setup(cmdclass={"build_py": BuildPyWithBrowserFiles})
