"""The tokenizer-free token path of the CPU LLM worker: bytes are tokens.

Token ids ``0..255`` are the UTF-8 bytes of the text, ``BOS = 256`` starts every prompt and
``EOS = 257`` ends a generation (vocabulary 258). Text -> ids is ``[BOS] + list(text.encode())``;
ids -> text decodes the bytes as UTF-8 (``errors="replace"``, incrementally when streaming, so a
character split across two tokens is emitted whole). A client may also send token ids
directly (OpenAI's ``prompt`` as a list of integers, v2 generate's ``input_ids``).

Chat messages become one prompt with a trivial template (no model-specific chat format exists
for random weights): ``"<role>: <content>\\n"`` per message, then ``"assistant: "``.
"""
from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence

BOS = 256
EOS = 257
VOCAB = 258


def encode(text: str, bos: bool = True) -> list[int]:
    """Token ids of ``text`` (its UTF-8 bytes), after ``BOS`` unless ``bos`` is False."""
    ids = list(text.encode("utf-8"))
    return [BOS, *ids] if bos else ids


def decode(ids: Iterable[int]) -> str:
    """Text of token ids; ``BOS``/``EOS`` are dropped, invalid UTF-8 becomes U+FFFD."""
    return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


class StreamDecoder:
    """Incremental ids -> text: bytes of a character split across chunks wait for the rest."""

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, ids: Sequence[int]) -> str:
        return self._dec.decode(bytes(i for i in ids if 0 <= i < 256))

    def flush(self) -> str:
        return self._dec.decode(b"", final=True)


def chat_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """The prompt text of chat ``(role, content)`` messages (see the module docstring)."""
    return "".join(f"{role}: {content}\n" for role, content in messages) + "assistant: "
