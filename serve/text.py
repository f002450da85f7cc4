"""The tab engine's text rules, in Python (tests/fixtures/engine_cases.json is checked against both): which prompt
tokens to prefill (web/src/engine/prefill.js), streaming detokenization that never splits a UTF-8 character
(detokenizer.js) and stop strings that are never emitted, not even in part (stop.js)."""

REPLACEMENT = "\ufffd"


def plan_prefill(cached: list[int], prompt: list[int], chunk_size: int) -> tuple[int, list[list[int]]]:
    """KV reuse: keep the longest common prefix of what the cache holds and the prompt (but always prefill the
    last prompt token: its logits choose the first new token); (tokens kept, chunks to prefill)."""
    keep = 0
    while keep < len(cached) and keep < len(prompt) and cached[keep] == prompt[keep]:
        keep += 1
    keep = min(keep, len(prompt) - 1)
    return keep, [prompt[start:start + chunk_size] for start in range(keep, len(prompt), chunk_size)]


class StreamingDetokenizer:
    """Text is emitted once the decoded window no longer ends in U+FFFD (a character still incomplete)."""

    def __init__(self, decode):
        self.decode = decode
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def push(self, token: int) -> str:
        self.ids.append(token)
        emitted = self.decode(self.ids[self.prefix_offset:self.read_offset])
        text = self.decode(self.ids[self.prefix_offset:])
        if len(text) <= len(emitted) or text.endswith(REPLACEMENT):
            return ""
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return text[len(emitted):]

    def flush(self) -> str:
        emitted = self.decode(self.ids[self.prefix_offset:self.read_offset])
        text = self.decode(self.ids[self.prefix_offset:])
        self.prefix_offset = self.read_offset = len(self.ids)
        end = len(text)
        while end > len(emitted) and text[end - 1] == REPLACEMENT:
            end -= 1
        return text[len(emitted):end]


class StopStringFilter:
    """Text is held back while its end could still begin a stop string, and released once it cannot."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.held = ""
        self.stopped = False

    def push(self, text: str) -> str:
        buffer = self.held + text
        found = [at for at in (buffer.find(stop) for stop in self.stops) if at != -1]
        if found:
            self.stopped = True
            self.held = ""
            return buffer[:min(found)]
        keep = self._partial_stop_length(buffer)
        self.held = buffer[len(buffer) - keep:]
        return buffer[:len(buffer) - keep]

    def flush(self) -> str:
        rest, self.held = self.held, ""
        return rest

    def _partial_stop_length(self, buffer: str) -> int:
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:n]):
                    longest = n
                    break
        return longest
