"""Tokenizers: sentencepiece (trained on the training split, byte fallback) or raw UTF-8 bytes.

Both append the same special tokens after their own vocabulary: BOS, EOS, BOI, EOI, PAD.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from core.registry import Registry

SPECIALS = ("<bos>", "<eos>", "<boi>", "<eoi>", "<pad>")
TOKENIZERS: Registry[type] = Registry("tokenizer")


class TokenizerError(ValueError):
    pass


class Tokenizer:
    kind = ""
    base_size = 0

    @property
    def vocab_size(self) -> int:
        return self.base_size + len(SPECIALS)

    def special(self, name: str) -> int:
        return self.base_size + SPECIALS.index(f"<{name}>")

    @property
    def bos(self) -> int:
        return self.special("bos")

    @property
    def eos(self) -> int:
        return self.special("eos")

    @property
    def boi(self) -> int:
        return self.special("boi")

    @property
    def eoi(self) -> int:
        return self.special("eoi")

    @property
    def pad(self) -> int:
        return self.special("pad")

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids) -> str:
        raise NotImplementedError

    def save(self, run_dir: Path) -> None:
        raise NotImplementedError


@TOKENIZERS.register("byte")
class ByteTokenizer(Tokenizer):
    """One token per UTF-8 byte: character level for ASCII text, comparable with char-level baselines."""

    kind = "byte"
    base_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if int(i) < 256).decode("utf-8", errors="replace")

    def save(self, run_dir: Path) -> None:
        (Path(run_dir) / "tokenizer.json").write_text(json.dumps({"kind": self.kind}))


@TOKENIZERS.register("sentencepiece")
class SentencePieceTokenizer(Tokenizer):
    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.base_size = self.sp.get_piece_size()

    @classmethod
    def train(cls, text: str, vocab_size: int) -> "SentencePieceTokenizer":
        import sentencepiece as spm

        lines = [line for line in text.split("\n") if line]
        if not lines:
            raise TokenizerError("cannot train a tokenizer on empty text")
        buf = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size, model_type="bpe",
                byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
                remove_extra_whitespaces=False, add_dummy_prefix=False, allow_whitespace_only_pieces=True,
                split_digits=True, max_sentence_length=1 << 16, num_threads=1, minloglevel=2,
                bos_id=-1, eos_id=-1, unk_id=0, train_extremely_large_corpus=False,
            )
        except RuntimeError as e:
            msg = str(e)
            if "Vocabulary size" in msg or "vocab_size" in msg:
                raise TokenizerError(
                    f"data.vocab_size={vocab_size} is more than this corpus supports ({msg.strip()}). "
                    "Lower data.vocab_size, use data.tokenizer=byte, or give a larger corpus."
                ) from None
            raise TokenizerError(f"sentencepiece training failed: {msg}") from None
        return cls(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> "SentencePieceTokenizer":
        path = Path(path)
        if not path.is_file():
            raise TokenizerError(f"tokenizer model {path} does not exist")
        try:
            return cls(path.read_bytes())
        except RuntimeError as e:
            raise TokenizerError(f"{path} is not a sentencepiece model: {e}") from None

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) < self.base_size])

    def save(self, run_dir: Path) -> None:
        (Path(run_dir) / "tokenizer.model").write_bytes(self.proto)
        (Path(run_dir) / "tokenizer.json").write_text(json.dumps({"kind": self.kind}))


def build_tokenizer(kind: str, train_text: str, vocab_size: int, model_path: str = "") -> Tokenizer:
    cls = TOKENIZERS.get(kind)
    if cls is ByteTokenizer:
        return ByteTokenizer()
    if model_path:
        return SentencePieceTokenizer.load(Path(model_path))
    return SentencePieceTokenizer.train(train_text, vocab_size)


def load_tokenizer(run_dir: Path) -> Tokenizer:
    run_dir = Path(run_dir)
    meta = run_dir / "tokenizer.json"
    if not meta.is_file():
        raise TokenizerError(f"{run_dir} has no tokenizer.json: was it a text run?")
    kind = json.loads(meta.read_text())["kind"]
    if kind == "byte":
        return ByteTokenizer()
    return SentencePieceTokenizer.load(run_dir / "tokenizer.model")
