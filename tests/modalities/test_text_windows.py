"""Text windows: every token of a document is trained on once, and a resume inside a document
continues with the same windows."""
import pytest

from modalities.text_data import DataError
from modalities.text_windows import TextWindows, document_windows
from modalities.tokenizers import ByteTokenizer


def test_windows_cover_every_target_once():
    ids = list(range(1, 24))
    for length in (4, 5, 22, 23, 50):
        windows = document_windows(ids, length)
        assert all(2 <= len(w) <= length + 1 for w in windows)
        inputs = [t for w in windows for t in w[:-1]]
        targets = [t for w in windows for t in w[1:]]
        assert inputs == ids[:-1] and targets == ids[1:]


class ListReader:
    """A deterministic document stream with StreamReader's interface."""

    def __init__(self, texts):
        self.texts, self.consumed = texts, 0

    def next(self):
        self.consumed += 1
        return {"text": self.texts[(self.consumed - 1) % len(self.texts)]}

    def skip_to(self, consumed):
        while self.consumed < consumed:
            self.next()


def test_resume_inside_a_document_continues_the_windows():
    texts = [f"document {i} " + "abcdefghij" * (i + 1) for i in range(6)]
    tok = ByteTokenizer()
    straight = TextWindows(ListReader(texts), tok, 8)
    expected = straight.take(30)
    first = TextWindows(ListReader(texts), tok, 8)
    head = first.take(11)
    state = first.state()
    assert 0 < state["used"] < len(first.current)  # the cut falls inside a document
    resumed = TextWindows(ListReader(texts), tok, 8)
    resumed.load_state(state)
    assert head + resumed.take(19) == expected
    assert resumed.windows_taken == 30
    # the first window of a document starts with BOS, a continuation does not
    assert expected[0][0] == tok.bos and expected[1][0] != tok.bos


def test_a_document_count_from_an_older_checkpoint_is_refused():
    windows = TextWindows(ListReader(["some text"]), ByteTokenizer(), 8)
    with pytest.raises(DataError, match="predates text windows"):
        windows.load_state(12)
