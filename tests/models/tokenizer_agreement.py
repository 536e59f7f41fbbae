"""C tokenizer vs the Python twin: the same ids and words for the same text.

Usage: tokenizer_agreement.py PATH/TO/tokenizer_dump

Inputs: review text and titles from the Amazon All_Beauty reviews, tricky synthetic lines
(accents, CJK, emoji, controls, U+FFFD, NUL, long words, Zs/Zl/Zp spaces, punctuation
categories, invalid UTF-8), on both real vocabularies, untruncated and truncated; then every
code point in four contexts.  The only differences allowed are code points that Python's
Unicode database (unicodedata) has as unassigned (Cn) while utf8proc's newer one assigns
them: BERT drops Cn characters, so the two sides can only agree on them by sharing a Unicode
version (docs/tokenizer.md).  Exit 0 = agree, 1 = differ, 77 = data absent (skipped).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "models" / "train"))

from driftrec_train.tokenizer import Tokenizer, config_do_lower_case  # noqa: E402

SKIP = 77
N_REVIEWS = 300
VOCABS = ("bert-mini-uncased-vocab", "bert-base-chinese-tokenizer")


def data_dir() -> Path:
    env = os.environ.get("DR_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def synthetic_lines() -> list[bytes]:
    texts = [
        "  \tHeLLo!how  \n Are yoU?  ",
        "H\u00e9llo na\u00efve caf\u00e9 \u00c5ngstr\u00f6m Cr\u00e8me Br\u00fbl\u00e9e",
        "ah\u535a\u63a8zz \u8fd9\u4e2a\u53e3\u7ea2\u5f88\u597d\u7528\uff01iPhone 15 Pro Max",
        "emoji \U0001f484\U0001f60a lipstick\U0001f484 \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f",
        "ctrl\x01\x02\x7f\x0b\x0cchars \u200b\u200d\u00ad soft\u00adhyphen \ufeffbom",
        "nul\x00inside and \ufffd replacement\ufffdchar",
        "a" * 100 + " " + "b" * 101 + " " + "\u00e9" * 100 + " " + "\u00e9" * 101,
        "x" * 250 + "," + "y" * 3,
        "spaces\u00a0nbsp\u3000ideographic\u2009thin\u202fnarrow\u205fmath\u1680ogham",
        "line\u2028separator\u2029paragraph\u0085nel\x1cfs\x1dgs",
        "\u00bfQu\u00e9? \u00a1S\u00ed! \u300c\u5f15\u7528\u300d \u2014dash\u2013 \u2018q\u2019 \u201cdq\u201d \u00abg\u00bb",
        "$5.99 ^caret `tick ~tilde |pipe \\back @at #hash %pct &amp *star +plus =eq <lt> [br] {c}",
        "\u0130stanbul \u0130I \u039f\u0394\u039f\u03a3 \u03a3\u0391 \u0391\u03a3.\u0392 \u0391\u03a3'\u03a3 \u1f08\u03a3",
        "\uac00\ub098\ub2e4 \u3042\u3044\u3046 \u30ab\u30bf\u30ab\u30ca \uf900\uf901 \U0002f800",
        "x\U0001d16d\U0001d165 z\U0001d16d\u0301\U0001d165 a\u034f\u0301b \u0301\u0302",
        "\u2160\u2161 \u216a \u24b6\u24d0 \u00aa\u00ba \u1d2c\u1d43 \uff21\uff22\uff43",
        "fi\ufb01ligature \u2126ohm \u212bangstrom \u1e9e\u00df stra\u00dfe",
        "\ue000private\U000f0000use \U00010ffff",
        "UNwant\u00e9d,running unaffable 2oz 100ml SPF50+ 24/7 3.5/5 #1 @brand",
        "",
        "   ",
        "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea \u0939\u093f\u0928\u094d\u0926\u0940 \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
        "\u0410\u0411\u0412 \u0430\u0431\u0432 \u0401\u0436 \u0130\u0131 \u01c5\u01c4\u01c6",
    ]
    lines = [t.encode("utf-8") for t in texts]
    # Invalid UTF-8: both sides must refuse the whole line.
    lines += [b"bad \x80 byte", b"trunc \xe4\xb8", b"overlong \xc0\xaf", b"surrogate \xed\xa0\x80",
              b"big \xf4\x90\x80\x80", b"\xff"]
    return lines


def review_lines(folder: Path) -> list[bytes]:
    path = folder / "All_Beauty_5.json.gz"
    lines: list[bytes] = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, row in enumerate(f):
            if i >= N_REVIEWS:
                break
            review = json.loads(row)
            for key in ("summary", "reviewText"):
                if review.get(key):
                    lines.append(review[key].encode("utf-8"))
    return lines


def write_records(path: Path, lines: list[bytes]) -> None:
    with open(path, "wb") as f:
        for line in lines:
            f.write(b"%d\n" % len(line) + line + b"\n")


def run_dump(dump: str, *args: str) -> list[str]:
    out = subprocess.run([dump, *args], check=True, stdout=subprocess.PIPE).stdout
    text = out.decode("utf-8")
    return text.split("\n")[:-1]  # only "\n" ends a line: words may hold U+0085 etc. never


def python_ids(tok: Tokenizer, line: bytes, max_len: int) -> str:
    try:
        return " ".join(str(i) for i in tok.encode(line, max_len))
    except ValueError:
        return "ERR"


def python_words(tok: Tokenizer, line: bytes) -> str:
    try:
        return " ".join(w[:100] for w in tok.basic_tokens(line))
    except ValueError:
        return "ERR"


def compare_records(dump: str, data: Path, records: Path, lines: list[bytes], label: str) -> int:
    failures = 0
    for folder in VOCABS:
        vocab = data / folder / "vocab.txt"
        tok = Tokenizer.from_folder(data / folder)
        lower = "1" if tok.do_lower_case else "0"
        checks = [("ids512", run_dump(dump, "ids", str(vocab), lower, "512", str(records)),
                   lambda line: python_ids(tok, line, 512)),
                  ("ids16", run_dump(dump, "ids", str(vocab), lower, "16", str(records)),
                   lambda line: python_ids(tok, line, 16)),
                  ("words", run_dump(dump, "words", str(vocab), lower, str(records)),
                   lambda line: python_words(tok, line))]
        for name, c_out, py in checks:
            if len(c_out) != len(lines):
                print(f"FAIL {label}/{folder}/{name}: C gave {len(c_out)} lines for {len(lines)}")
                failures += 1
                continue
            bad = [i for i, line in enumerate(lines) if py(line) != c_out[i]]
            for i in bad[:5]:
                print(f"FAIL {label}/{folder}/{name} line {i}: {lines[i][:80]!r}\n"
                      f"  C:      {c_out[i][:300]}\n  Python: {py(lines[i])[:300]}")
            failures += len(bad)
            print(f"{label}/{folder}/{name}: {len(lines) - len(bad)}/{len(lines)} lines agree")
    return failures


def python_codepoint_line(lower: Tokenizer, cased: Tokenizer, cp: int) -> str:
    c = chr(cp)
    return "\t".join([f"{cp:X}",
                      " ".join(lower.basic_tokens("x" + c + "y")),
                      " ".join(cased.basic_tokens("x" + c + "y")),
                      " ".join(lower.basic_tokens(c + "\u03a3")),
                      " ".join(lower.basic_tokens("\u0391" + c + "\u03a3"))])


def compare_codepoints(dump: str, data: Path) -> int:
    vocab = data / VOCABS[0] / "vocab.txt"
    lower = Tokenizer.from_file(vocab, True)
    cased = Tokenizer.from_file(vocab, False)
    c_out = run_dump(dump, "codepoints", str(vocab))
    cps = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    if len(c_out) != len(cps):
        print(f"FAIL codepoints: C gave {len(c_out)} lines for {len(cps)}")
        return 1
    failures = 0
    version_only = []
    # Every unassigned or private-use character is dropped alike: compute that line once.
    dropped = python_codepoint_line(lower, cased, 0x0378).split("\t", 1)[1]
    for cp, c_line in zip(cps, c_out):
        if unicodedata.category(chr(cp)) in ("Cn", "Co"):
            py_line = f"{cp:X}\t{dropped}"
        else:
            py_line = python_codepoint_line(lower, cased, cp)
        if py_line == c_line:
            continue
        if unicodedata.category(chr(cp)) == "Cn":
            version_only.append(cp)
            continue
        failures += 1
        if failures <= 10:
            print(f"FAIL U+{cp:04X} ({unicodedata.category(chr(cp))}):\n  C:      {c_line!r}\n"
                  f"  Python: {py_line!r}")
    print(f"codepoints: {len(cps) - failures - len(version_only)}/{len(cps)} agree, "
          f"{failures} differ, {len(version_only)} unassigned in Python's Unicode "
          f"{unicodedata.unidata_version} only (C follows utf8proc's newer Unicode)")
    return failures


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    dump = sys.argv[1]
    data = data_dir()
    missing = [f for f in VOCABS if not (data / f / "vocab.txt").exists()]
    if missing:
        print(f"SKIP: vocabularies not found under {data}: {', '.join(missing)} "
              "(set DR_DATA_DIR)")
        return SKIP
    assert config_do_lower_case(data / VOCABS[0]) and not config_do_lower_case(data / VOCABS[1])
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = synthetic_lines()
        records = Path(tmp) / "synthetic.rec"
        write_records(records, synthetic)
        failures += compare_records(dump, data, records, synthetic, "synthetic")
        reviews_dir = data / "amazon-all-beauty-5core-2018"
        if (reviews_dir / "All_Beauty_5.json.gz").exists():
            reviews = review_lines(reviews_dir)
            records = Path(tmp) / "reviews.rec"
            write_records(records, reviews)
            failures += compare_records(dump, data, records, reviews, "reviews")
        else:
            print(f"reviews: {reviews_dir} not found, review text not compared")
    failures += compare_codepoints(dump, data)
    print("agreement: PASS" if failures == 0 else f"agreement: FAIL ({failures} differences)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
