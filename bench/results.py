"""What every benchmark row records, the memory sampling the rows share and the machine's CPU (a module of its own
so that bench/__main__.py, bench/context.py and the baselines they run, such as bench/wllama.py, import it without
importing each other)."""
import os
import platform
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    engine: str
    quantization: str
    load_cold_s: float | None
    load_warm_s: float | None
    time_to_first_token_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    peak_memory_bytes: int
    weight_bytes: int
    greedy_ids: list[list[int]] | None = None  # per prompt, where an engine's row records them (the wllama rows)
    answers: list[str] | None = None  # per prompt, the greedy answer's text (the browser rows)


class PeakMemory:
    """Samples, from a thread, the memory of processes chosen by `pids()` (PSS from /proc/PID/smaps_rollup:
    shared pages counted once) and keeps the largest total seen."""

    def __init__(self, pids, interval_s: float = 0.2):
        self.pids, self.interval_s, self.peak, self._stop = pids, interval_s, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, sum(pss_bytes(pid) for pid in self.pids()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass  # the process ended between listing and reading
    return 0


def chromium_pids() -> list[int]:
    """Chromium processes started under this one (Playwright's driver launches them)."""
    parent_of, exe_of = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent_of[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                exe_of[int(entry.name)] = os.readlink(entry / "exe")
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue

    def descends_from_us(pid):
        while pid > 1:
            pid = parent_of.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return [pid for pid, exe in exe_of.items() if "chrom" in exe and descends_from_us(pid)]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
