"""Training windows of a fixed length cut from a stream of text documents.

Every token of every document is trained on: a document longer than the context is cut into
consecutive windows (each window's last token is the next one's first input, so no target is lost),
and the last window is padded. Taking only the head of each document instead trained the mixed
model on the first 292 of every 2,048 characters of tinyshakespeare.
"""
from __future__ import annotations

from modalities.text_data import DataError
from modalities.tokenizers import Tokenizer


def document_windows(ids: list[int], length: int) -> list[list[int]]:
    """Windows of ``length + 1`` ids (inputs plus the shifted targets) covering ``ids``."""
    return [ids[i:i + length + 1] for i in range(0, max(1, len(ids) - 1), length)]


class TextWindows:
    """Pulls documents from ``reader`` (a StreamReader of {"text": str}) as windows are needed.

    The position is (documents pulled, windows already used from the last one), which is all a resume
    needs: the document stream is deterministic, so the last document is pulled and cut again.
    """

    def __init__(self, reader, tokenizer: Tokenizer, length: int):
        self.reader, self.tok, self.length = reader, tokenizer, length
        self.current: list[list[int]] = []
        self.used = 0  # windows of the current document already handed out
        self.windows_taken = 0

    def _pull(self) -> None:
        text = self.reader.next()["text"]
        self.current = document_windows([self.tok.bos, *self.tok.encode(text)], self.length)
        self.used = 0

    def next(self) -> list[int]:
        while self.used >= len(self.current):
            self._pull()
        self.used += 1
        self.windows_taken += 1
        return self.current[self.used - 1]

    def take(self, n: int) -> list[list[int]]:
        return [self.next() for _ in range(n)]

    def state(self) -> dict:
        return {"documents": self.reader.consumed, "used": self.used, "windows": self.windows_taken}

    def load_state(self, state: dict) -> None:
        if not isinstance(state, dict):  # a count of documents: one window each, from before windows
            raise DataError("this checkpoint's text position predates text windows and cannot be restored "
                             "exactly; start a new run (or resume without data.text_path)")
        docs, used = state.get("documents", 0), state.get("used", 0)
        if docs > 0:
            self.reader.skip_to(docs - 1)
            self._pull()
            self.used = used
        self.windows_taken = state.get("windows", 0)
