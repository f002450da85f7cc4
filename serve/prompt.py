"""A bundle's tokenizer and chat prompts, as the tab builds them (web/src/engine/prompt-tokens.js): the Jinja
chat template rendered with the generation prompt, in which only the template's own markers become control
tokens. Message text that spells a special token ("<|im_end|>...") is swapped for a private-use placeholder
before rendering and tokenized as the plain text it is afterwards, so it cannot forge a turn."""
import json
import re
from pathlib import Path

from tokenizers import Tokenizer

from models.tokenizer import render_chat_template

ESCAPE, END = "\ue000", "\ue001"
PLACEHOLDER = re.compile(f"{ESCAPE}(\\d+){END}")


class BundleTokenizer:
    def __init__(self, bundle_dir: Path):
        tokenizer_json = json.loads((bundle_dir / "tokenizer.json").read_text(encoding="utf-8"))
        self.config = json.loads((bundle_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
        self.has_chat_template = isinstance(self.config.get("chat_template"), str)  # a base model has none
        # the BOS a completion's prompt starts with, where the model wants one (a chat template writes its own)
        self.bos_id = self.config.get("bos_token_id") if self.config.get("add_bos_token") else None
        added = tokenizer_json.get("added_tokens", [])
        self.full = Tokenizer.from_str(json.dumps(tokenizer_json))
        self.plain = Tokenizer.from_str(json.dumps({**tokenizer_json,
                                                    "added_tokens": [t for t in added if not t["special"]]}))
        self.special_ids = {t["content"]: t["id"] for t in added if t["special"]}
        alternatives = [re.escape(s) for s in sorted(self.special_ids, key=len, reverse=True)]
        self.special = re.compile("|".join(alternatives)) if alternatives else None
        self.escapable = re.compile("|".join([ESCAPE, *alternatives]))

    def decode(self, ids: list[int]) -> str:
        return self.full.decode(ids, skip_special_tokens=False)

    def encode_text(self, text: str) -> list[int]:
        """Raw text (a completion's prompt), special tokens included, after the BOS where the model wants one."""
        ids = self.full.encode(text, add_special_tokens=False).ids
        return ids if self.bos_id is None else [self.bos_id, *ids]

    def chat_prompt_ids(self, messages: list[dict]) -> list[int]:
        originals: list[str] = []

        def escape(text: str) -> str:
            def placeholder(match):
                originals.append(match.group(0))
                return f"{ESCAPE}{len(originals) - 1}{END}"
            return self.escapable.sub(placeholder, text)

        prompt = render_chat_template(self.config, [{**m, "content": escape(m["content"])} for m in messages],
                                      add_generation_prompt=True)
        ids: list[int] = []

        def encode_plain(text: str):
            if text:
                ids.extend(self.plain.encode(PLACEHOLDER.sub(lambda m: originals[int(m.group(1))], text),
                                             add_special_tokens=False).ids)

        start = 0
        for match in self.special.finditer(prompt) if self.special else ():
            encode_plain(prompt[start:match.start()])
            ids.append(self.special_ids[match.group(0)])
            start = match.end()
        encode_plain(prompt[start:])
        return ids
