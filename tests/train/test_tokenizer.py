"""The Python tokenizer twin: BERT's tokenizer-test facts, edges, and the real vocabularies.

The C side has the same facts in tests/models/test_tokenizer.c; the two are compared on real
text by tests/models/tokenizer_agreement.py.
"""

import tempfile
import unittest
from pathlib import Path

from ._paths import DATA_DIR  # also puts models/train on sys.path

from driftrec_train import tokenizer as T

VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","]


class BertFacts(unittest.TestCase):
    """The cases of BERT's tokenization_test.py, as facts."""

    def test_basic_lower(self):
        tok = T.Tokenizer(VOCAB, do_lower_case=True)
        self.assertEqual(tok.basic_tokens(" \tHeLLo!how  \n Are yoU?  "),
                         ["hello", "!", "how", "are", "you", "?"])
        self.assertEqual(tok.basic_tokens("H\u00e9llo"), ["hello"])

    def test_basic_no_lower(self):
        tok = T.Tokenizer(VOCAB, do_lower_case=False)
        self.assertEqual(tok.basic_tokens(" \tHeLLo!how  \n Are yoU?  "),
                         ["HeLLo", "!", "how", "Are", "yoU", "?"])

    def test_chinese(self):
        tok = T.Tokenizer(VOCAB, do_lower_case=True)
        self.assertEqual(tok.basic_tokens("ah\u535a\u63a8zz"), ["ah", "\u535a", "\u63a8", "zz"])

    def test_wordpiece(self):
        tok = T.Tokenizer(VOCAB, do_lower_case=False)
        self.assertEqual(tok.tokenize(""), [])
        self.assertEqual(tok.tokenize("unwanted running"), ["un", "##want", "##ed", "runn", "##ing"])
        self.assertEqual(tok.tokenize("unwantedX running"), ["[UNK]", "runn", "##ing"])
        self.assertEqual([tok.vocab[t] for t in ["un", "##want", "##ed", "runn", "##ing"]],
                         [7, 4, 5, 8, 9])

    def test_full(self):
        tok = T.Tokenizer(VOCAB, do_lower_case=True)
        self.assertEqual(tok.tokenize("UNwant\u00e9d,running"),
                         ["un", "##want", "##ed", ",", "runn", "##ing"])
        self.assertEqual(tok.encode("UNwant\u00e9d,running"), [1, 7, 4, 5, 10, 8, 9, 2])

    def test_classes(self):
        for c in " \t\r\n\u00a0":
            self.assertTrue(T.is_whitespace(c), repr(c))
        for c in "A-":
            self.assertFalse(T.is_whitespace(c), c)
        self.assertTrue(T.is_control("\u0005"))
        for c in ["A", " ", "\t", "\r", "\U0001f4a9"]:
            self.assertFalse(T.is_control(c), repr(c))
        for c in "-$`.":
            self.assertTrue(T.is_punctuation(c), c)
        for c in "A ":
            self.assertFalse(T.is_punctuation(c), repr(c))


class Edges(unittest.TestCase):
    def setUp(self):
        self.lower = T.Tokenizer(VOCAB, do_lower_case=True)
        self.cased = T.Tokenizer(VOCAB, do_lower_case=False)

    def test_cleaning(self):
        self.assertEqual(self.cased.basic_tokens("a\x00b\ufffdc\x01\u200bd"), ["abcd"])
        self.assertEqual(self.cased.basic_tokens("a\u00a0b\u3000c\u2028d\u2029e"),
                         ["a", "b", "c", "d", "e"])
        self.assertEqual(self.cased.basic_tokens("\x0b\x0c\x1c\x85"), [])

    def test_lower_case(self):
        self.assertEqual(self.lower.basic_tokens("\u0130STANBUL"), ["istanbul"])
        self.assertEqual(self.lower.basic_tokens("\u039f\u0394\u039f\u03a3 \u03a3\u0391"),
                         ["\u03bf\u03b4\u03bf\u03c2", "\u03c3\u03b1"])
        self.assertEqual(self.lower.basic_tokens("\uac00"), ["\u1100\u1161"])
        self.assertEqual(self.lower.basic_tokens("a \u0301 b"), ["a", "b"])

    def test_long_words(self):
        tok = T.Tokenizer(["[UNK]", "[CLS]", "[SEP]", "a", "##a"], do_lower_case=False)
        self.assertEqual(len(tok.tokenize("a" * 100)), 100)
        self.assertEqual(tok.tokenize("a" * 101), ["[UNK]"])

    def test_truncation(self):
        text = "unwanted running, unwanted"
        full = self.lower.encode(text)
        self.assertEqual(full, [1, 7, 4, 5, 8, 9, 10, 7, 4, 5, 2])
        for max_len in range(2, 12):
            ids = self.lower.encode(text, max_len)
            self.assertEqual(ids, full[:max_len - 1] + [2] if max_len < 11 else full)
        with self.assertRaises(ValueError):
            self.lower.encode(text, 1)

    def test_invalid_utf8(self):
        for bad in [b"ab\x80", b"a\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]:
            with self.assertRaises(ValueError):
                self.lower.encode(bad)
        self.assertEqual(self.lower.encode("unwanted".encode("utf-8")), [1, 7, 4, 5, 2])

    def test_vocab_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vocab.txt"
            path.write_bytes(b"[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhi\r\n\r\nhi\r\n\xe2\x80\xa8\nthere")
            tokens = T.load_vocab(path)
            self.assertEqual(len(tokens), 9)
            tok = T.Tokenizer(tokens, do_lower_case=True)
            self.assertEqual(tok.vocab["hi"], 6)
            self.assertEqual(tok.vocab["\u2028"], 7)
            self.assertEqual(tok.vocab["there"], 8)
            self.assertTrue(T.config_do_lower_case(tmp))
            (Path(tmp) / "tokenizer_config.json").write_text('{"do_lower_case": false}')
            self.assertFalse(T.config_do_lower_case(tmp))
            path.write_bytes(b"[UNK]\n[CLS]\n")
            with self.assertRaises(ValueError):
                T.Tokenizer.from_file(path, True)


@unittest.skipUnless((DATA_DIR / "bert-mini-uncased-vocab" / "vocab.txt").exists()
                     and (DATA_DIR / "bert-base-chinese-tokenizer" / "vocab.txt").exists(),
                     f"shared data not found at {DATA_DIR} (set DR_DATA_DIR)")
class RealVocabularies(unittest.TestCase):
    def test_uncased_english(self):
        tok = T.Tokenizer.from_folder(DATA_DIR / "bert-mini-uncased-vocab")
        self.assertTrue(tok.do_lower_case)
        self.assertEqual(len(tok.tokens), 30522)
        self.assertEqual((tok.unk_id, tok.cls_id, tok.sep_id), (100, 101, 102))
        self.assertEqual(tok.tokenize("This moisturizer is AMAZING!!!"),
                         ["this", "moist", "##uri", "##zer", "is", "amazing", "!", "!", "!"])
        self.assertEqual(tok.encode("hello world, hello again", 5), [101, 7592, 2088, 1010, 102])

    def test_chinese(self):
        tok = T.Tokenizer.from_folder(DATA_DIR / "bert-base-chinese-tokenizer")
        self.assertFalse(tok.do_lower_case)
        self.assertEqual(len(tok.tokens), 21128)
        text = "\u4eca\u5929\u4e70\u4e863\u652f\u53e3\u7ea2\uff01"
        self.assertEqual(tok.tokenize(text), list("\u4eca\u5929\u4e70\u4e86") + ["3"] +
                         list("\u652f\u53e3\u7ea2\uff01"))
        self.assertEqual(tok.tokenize("iPhone 15\u624b\u673a\u58f3\U0001f60a"),
                         ["[UNK]", "15", "\u624b", "\u673a", "\u58f3", "[UNK]"])


if __name__ == "__main__":
    unittest.main()
