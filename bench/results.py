"""What every benchmark row records, the memory sampling the rows share and the machine's CPU (a module of its own
so that bench/__main__.py, bench/context.py and the baselines they run, such as bench/wllama.py, import it without
importing each other)."""
import os
import platform
import threading
import time
from contextlib import contextmanager
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
    # The most that memory rose during one page's load (and generation) above the page's memory before the engine
    # was created: what the engine itself held (its worker and code too), without the browser's processes and the
    # page (PeakMemory.phase).
    peak_rise_bytes: int | None = None


class PeakMemory:
    """Samples, from a thread, the memory of processes chosen by `pids()` (PSS from /proc/PID/smaps_rollup:
    shared pages counted once) and keeps the largest total seen, and the largest rise within a phase."""

    def __init__(self, pids, interval_s: float = 0.2):
        self.pids, self.interval_s, self.peak, self._stop = pids, interval_s, 0, threading.Event()
        self.rise, self._phase_peak = 0, 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        return sum(pss_bytes(pid) for pid in self.pids())

    def _run(self):
        while not self._stop.wait(self.interval_s):
            total = self._total()
            self.peak, self._phase_peak = max(self.peak, total), max(self._phase_peak, total)

    @contextmanager
    def phase(self):
        """A stretch (a page's load and generation) whose peak is measured above the total at its start, taken
        once the page has settled."""
        time.sleep(1)
        start = self._phase_peak = self._total()
        yield
        self.rise = max(self.rise, max(self._phase_peak, self._total()) - start)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def reopen_page(page, open_page):
    """`page` closed and, once its renderer has exited, a page from `open_page()`: a warm load in a new page, as a
    user coming back meets it. After a reload the renderer keeps the old page's shared wasm memory for about 2 s,
    which a warm load of 1-2 s overlaps (bench.load_memory measures that case)."""
    page.close()
    time.sleep(2)
    return open_page()


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
