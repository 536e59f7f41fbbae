"""BERT's basic tokenizer + WordPiece, the Python twin of models/tokenizer.c.

Training tokenizes text with this module; the server tokenizes query text with the C one.
Both follow the rules in docs/tokenizer.md and must give the same ids for the same text
(tests/models/tokenizer_agreement.py checks that on real review text and tricky lines):

1. Clean: drop U+0000, U+FFFD and every category C* character except tab, newline and
   carriage return; those three, space and category Zs become one space.
2. Put spaces around every CJK ideograph (the blocks in ``_CJK_RANGES``, not kana/hangul).
3. Split on whitespace (``str.split()``: after cleaning, space, U+2028 and U+2029).
4. Per token, only when ``do_lower_case``: ``str.lower()`` then NFD, dropping category Mn.
5. Split each token around punctuation (ASCII 33-47, 58-64, 91-96, 123-126 or category P*).
6. WordPiece: greedy longest match, ``##`` for continuations, ``[UNK]`` for a word that
   cannot be covered or is longer than 100 code points.

Unicode properties come from ``unicodedata`` (Python's own Unicode version); see
docs/tokenizer.md for what that means next to the C side's utf8proc.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Iterable, Optional, Union

MAX_INPUT_CHARS_PER_WORD = 100
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"

_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or category Zs."""
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """Category C* (Cc, Cf, Cs, Co, Cn), except tab, newline and carriage return."""
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """Every non-letter, non-digit ASCII character, or category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk(cp: int) -> bool:
    """CJK Unified/Compatibility Ideographs and their extensions (not kana, not hangul)."""
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def load_vocab(path: Union[str, Path]) -> list[str]:
    """Tokens in id order: one per ``\\n``-separated line of UTF-8, a trailing ``\\r`` dropped.

    The last line needs no newline. Only ``\\n`` separates lines (the Chinese vocabulary has a
    U+2028 token). Raises ValueError on invalid UTF-8.
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: invalid UTF-8 at byte {exc.start}") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def config_do_lower_case(folder: Union[str, Path]) -> bool:
    """``do_lower_case`` from a vocabulary folder's tokenizer_config.json.

    Absent file or key means True, the default of BERT's tokenizers (the uncased English
    vocabulary ships no tokenizer config; bert-base-chinese says false).
    """
    config = Path(folder) / "tokenizer_config.json"
    if not config.exists():
        return True
    return bool(json.loads(config.read_text(encoding="utf-8")).get("do_lower_case", True))


class Tokenizer:
    """Basic tokenizer + WordPiece over one vocabulary. Read-only after construction."""

    def __init__(self, vocab: Iterable[str], do_lower_case: bool) -> None:
        self.tokens = list(vocab)
        # Like BERT's loader: a duplicated token keeps the id of its last line.
        self.vocab = {token: i for i, token in enumerate(self.tokens)}
        self.do_lower_case = do_lower_case
        for special in (UNK_TOKEN, CLS_TOKEN, SEP_TOKEN):
            if special not in self.vocab:
                raise ValueError(f"vocabulary has no {special} token")
        self.unk_id = self.vocab[UNK_TOKEN]
        self.cls_id = self.vocab[CLS_TOKEN]
        self.sep_id = self.vocab[SEP_TOKEN]

    @classmethod
    def from_file(cls, path: Union[str, Path], do_lower_case: bool) -> "Tokenizer":
        return cls(load_vocab(path), do_lower_case)

    @classmethod
    def from_folder(cls, folder: Union[str, Path]) -> "Tokenizer":
        """vocab.txt with do_lower_case from the folder's config (``config_do_lower_case``)."""
        return cls(load_vocab(Path(folder) / "vocab.txt"), config_do_lower_case(folder))

    # -- basic tokenizer ------------------------------------------------------------------

    @staticmethod
    def _clean(text: str) -> str:
        out = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or is_control(char):
                continue
            if is_whitespace(char):
                out.append(" ")
            elif is_cjk(cp):
                out.append(" " + char + " ")
            else:
                out.append(char)
        return "".join(out)

    @staticmethod
    def _strip_accents(token: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFD", token)
                       if unicodedata.category(c) != "Mn")

    @staticmethod
    def _split_on_punctuation(token: str) -> list[str]:
        words: list[str] = []
        current: list[str] = []
        for char in token:
            if is_punctuation(char):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(char)
            else:
                current.append(char)
        if current:
            words.append("".join(current))
        return words

    def basic_tokens(self, text: Union[str, bytes]) -> list[str]:
        """The basic tokenizer's words: cleaned, split, lower-cased/stripped if configured."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"invalid UTF-8 at byte {exc.start}") from exc
        words: list[str] = []
        for token in self._clean(text).split():
            if self.do_lower_case:
                token = self._strip_accents(token.lower())
            words.extend(self._split_on_punctuation(token))
        return words

    # -- WordPiece ------------------------------------------------------------------------

    def wordpiece(self, word: str) -> list[str]:
        """Greedy longest-match-first pieces of one basic token."""
        if len(word) > MAX_INPUT_CHARS_PER_WORD:
            return [UNK_TOKEN]
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            piece: Optional[str] = None
            while start < end:
                candidate = word[start:end]
                if start > 0:
                    candidate = "##" + candidate
                if candidate in self.vocab:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                return [UNK_TOKEN]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: Union[str, bytes]) -> list[str]:
        """WordPiece tokens of the text, without [CLS]/[SEP]."""
        return [piece for word in self.basic_tokens(text) for piece in self.wordpiece(word)]

    def encode(self, text: Union[str, bytes], max_len: int = 512) -> list[int]:
        """[CLS] ids [SEP], the ids truncated so that the whole is at most max_len (>= 2)."""
        if max_len < 2:
            raise ValueError("max_len must leave room for [CLS] and [SEP]")
        ids = [self.vocab[piece] for piece in self.tokenize(text)][:max_len - 2]
        return [self.cls_id] + ids + [self.sep_id]
