"""The served model: one bundle, loaded into N sandboxes (one per worker, each with its own KV cache), and a
bounded queue of requests waiting for one. A request takes the free worker whose cache shares the longest
prefix with its prompt (KV reuse per conversation: a follow-up turn prefills only the new tokens), waits when
none is free, and is refused (QueueFull, HTTP 429) when the queue is full."""
import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from compile.bundle import Bundle
from .model import SandboxModel
from .prompt import BundleTokenizer
from .sandbox import CACHE_DIR, DEFAULT_CALL_TIMEOUT_S, DEFAULT_MEMORY_LIMIT

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """Every worker is busy and the queue holds as many requests as it may."""


@dataclass
class SandboxSettings:
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S
    cache_dir: Path | None = CACHE_DIR

    def load(self, bundle: Bundle) -> SandboxModel:
        return SandboxModel.load(bundle, self.memory_limit, self.call_timeout_s, self.cache_dir)


class Worker:
    def __init__(self, index: int, model: SandboxModel):
        self.index = index
        self.model = model
        self.busy = False


class ServedModel:
    def __init__(self, bundle: Bundle, workers: int = 1, max_queue: int = 8, settings: SandboxSettings | None = None):
        self.bundle = bundle
        self.settings = settings or SandboxSettings()
        manifest = bundle.manifest
        self.id = f"{manifest['model']}-{manifest['quantization']}"
        self.created = int(time.time())
        chat_config = json.loads((bundle.path / "mlc-chat-config.json").read_text(encoding="utf-8"))
        conv = chat_config.get("conv_template") or {}
        eos = chat_config.get("eos_token_id", [])
        self.stop_token_ids = {*(eos if isinstance(eos, list) else [eos]), *(conv.get("stop_token_ids") or [])}
        self.stop_strings = list(conv.get("stop_str") or [])
        self.defaults = {"vocab_size": chat_config["vocab_size"], "temperature": chat_config.get("temperature", 1),
                         "top_p": chat_config.get("top_p", 1)}
        self.tokenizer = BundleTokenizer(bundle.path)
        started = time.perf_counter()
        self.workers = [Worker(i, self.settings.load(bundle)) for i in range(workers)]
        self.load_s = time.perf_counter() - started
        self.context_window_size = self.workers[0].model.context_window_size
        self.generation_threads = ThreadPoolExecutor(workers, thread_name_prefix="sandbox")  # one per worker
        self.max_queue = max_queue
        self.waiting = 0
        self._changed = asyncio.Condition()

    async def acquire(self, prompt_ids: list[int]) -> Worker:
        async with self._changed:
            if not self._free() and self.waiting >= self.max_queue:
                raise QueueFull()
            self.waiting += 1
            try:
                await self._changed.wait_for(self._free)
            finally:
                self.waiting -= 1
            worker = max(self._free(), key=lambda w: _common_prefix(w.model.tokens, prompt_ids))
            worker.busy = True
            return worker

    async def release(self, worker: Worker) -> None:
        async with self._changed:
            worker.busy = False
            self._changed.notify_all()

    def recover(self, worker: Worker, error: Exception) -> None:
        """After a failed generation (on the worker's thread): a sandbox cut off by its deadline, that trapped or
        whose KV cache is in an unknown state is replaced by a fresh instance of the same compiled module."""
        log.warning("worker %d: %s; starting a fresh sandbox", worker.index, error)
        worker.model = self.settings.load(self.bundle)

    def _free(self) -> list[Worker]:
        return [w for w in self.workers if not w.busy]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
