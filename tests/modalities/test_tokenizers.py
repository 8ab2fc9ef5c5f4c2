import pytest
import torch

from core.batch_rng import DATA_STREAM, OBJECTIVE_STREAM, BatchRNG
from modalities.text_data import DataError, TextData, embedded_corpus, split_text
from modalities.tokenizers import ByteTokenizer, SentencePieceTokenizer, TokenizerError, load_tokenizer


def test_byte_roundtrip_and_specials():
    tok = ByteTokenizer()
    text = "héllo\nwörld ✓"
    ids = tok.encode(text)
    assert len(ids) == len(text.encode()) and tok.decode(ids) == text
    assert tok.vocab_size == 261 and tok.decode(ids + [tok.eos]) == text


def test_sentencepiece_roundtrip_with_byte_fallback(tmp_path):
    corpus = embedded_corpus()
    tok = SentencePieceTokenizer.train(corpus[:200_000], 512)
    text = corpus[300_000:302_000] + " unseen: 漢字 ✓"
    assert tok.decode(tok.encode(text)) == text
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.encode(text) == tok.encode(text) and again.vocab_size == tok.vocab_size


def test_vocab_too_large_is_a_clear_error():
    with pytest.raises(TokenizerError, match="more than this corpus supports"):
        SentencePieceTokenizer.train("tiny corpus\nof two lines", 4000)


def test_split_is_by_position():
    train, val = split_text("abcdefghij", 0.1)
    assert (train, val) == ("abcdefghi", "j")


def test_corpus_shorter_than_context_is_refused():
    with pytest.raises(DataError, match="fewer than data.seq_len"):
        TextData(ByteTokenizer(), "a" * 1000, "b" * 10, seq_len=64)


def test_batches_are_a_function_of_the_step():
    d = TextData(ByteTokenizer(), embedded_corpus()[:50_000], "x" * 200, seq_len=32, seed=1)
    a, b, c = d.batch(7, 4)["tokens"], d.batch(7, 4)["tokens"], d.batch(8, 4)["tokens"]
    assert a.equal(b) and not a.equal(c) and a.shape == (4, 33)
    w = d.val_windows(100)
    assert w.shape == (6, 33) and w[0, -1] == w[1, 0]  # windows tile the split


def test_windows_start_where_the_data_stream_draws():
    d = TextData(ByteTokenizer(), embedded_corpus()[:50_000], "x" * 200, seq_len=32, seed=3)
    tokens = d.batch(step=7, batch_size=8, micro=1)["tokens"]
    for stream, same in ((DATA_STREAM, True), (OBJECTIVE_STREAM, False)):
        starts = BatchRNG(3, 7, 1, stream=stream).indices(len(d.train.ids) - 32, 8)
        assert torch.equal(tokens, d.train.ids[starts[:, None] + torch.arange(33)]) == same
