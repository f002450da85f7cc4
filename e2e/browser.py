"""Launching Debian's Chromium with WebGPU on SwiftShader (no GPU needed) through Playwright."""
import shutil

# SwiftShader gives WebGPU on machines without a GPU. The background-networking flags keep Chromium from
# calling out (the network is closed here); navigator.gpu additionally needs a secure context (127.0.0.1).
WEBGPU_ARGS = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-quic", "--enable-unsafe-webgpu", "--enable-features=Vulkan,WebGPU",
    "--use-vulkan=swiftshader", "--use-webgpu-adapter=swiftshader", "--use-angle=swiftshader",
    "--disable-vulkan-surface",
]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("Debian's chromium is not installed: run `make setup` (apt-get install chromium)")
    return path


def launch_webgpu_chromium(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), args=WEBGPU_ARGS, headless=True)
