#!/usr/bin/env python3
"""Builds the tokenizer parity corpus from text that Debian 12 ships, plus generated cases.

Deterministic: the same Debian package versions give the same bytes. The result is committed as
corpus.txt.zst (CI machines may have no docs or locales installed); this script says where each
part came from (CORPUS.md lists the packages and licences).

Documents are separated by "\\x1e\\n" (ASCII record separator, then newline); none contains 0x1e.
Each source file is cut into documents of at most DOC_BYTES at line ends.

    python3 tests/tokenizer/make_corpus.py OUT      (then: zstd -19 OUT -o corpus.txt.zst)
"""
import gettext
import gzip
import random
import sys

DOC_BYTES = 6000

ENGLISH = [  # prose: READMEs, licence texts, the bash manual (roff source)
    "/usr/share/man/man1/bash.1.gz",              # bash, GPL-3+
    "/usr/share/doc/gdb/README.gz",               # gdb, GPL-3+
    "/usr/share/doc/coreutils/README.gz",         # coreutils, GPL-3+
    "/usr/share/doc/apt/README.md.gz",            # apt, GPL-2+
    "/usr/share/doc/make/README.gz",              # make, GPL-3+
    "/usr/share/common-licenses/GPL-3",           # base-files (licence text, verbatim copying allowed)
    "/usr/share/common-licenses/Apache-2.0",      # base-files
]
CODE = [
    "/usr/include/c++/12/bits/stl_algo.h",        # libstdc++-12-dev, GPL-3+ with runtime exception
    "/usr/include/stdio.h",                       # libc6-dev, LGPL-2.1+
    "/usr/include/pthread.h",                     # libc6-dev, LGPL-2.1+
    "/usr/lib/python3.11/argparse.py",            # libpython3.11-minimal, PSF-2.0
    "/usr/lib/python3.11/textwrap.py",            # libpython3.11-minimal, PSF-2.0
    "/usr/lib/python3.11/json/decoder.py",        # libpython3.11-minimal, PSF-2.0
]
TRANSLATIONS = [  # msgstr texts of gettext catalogs (packages as named, GPL-3+ / GPL-2+)
    (locale, f"/usr/share/locale/{locale}/LC_MESSAGES/{domain}.mo")
    for locale in ("zh_CN", "zh_TW", "ja")
    for domain in ("coreutils", "bash", "apt", "dpkg")
]
SPECIAL = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", "🤖", "🎉", "☕", "🧪", "💡"]


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def cut(text):
    """Documents of at most DOC_BYTES, cut after a newline."""
    docs, current, size = [], [], 0
    for line in text.splitlines(keepends=True):
        n = len(line.encode("utf-8"))
        if current and size + n > DOC_BYTES:
            docs.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += n
    if current:
        docs.append("".join(current))
    return docs


def translations(path):
    with open(path, "rb") as f:
        catalog = gettext.GNUTranslations(f)._catalog
    # Keys are msgid (or (msgid, n) for plurals); keep the translations, in msgid order.
    texts = [catalog[key] for key in sorted(catalog, key=str) if key and catalog[key]]
    return "\n".join(texts) + "\n"


def generated(rng):
    """Numbers (DeepSeek splits digits in groups of 3), emoji, whitespace runs, special tokens
    inside text; returned as str documents."""
    docs = []
    for _ in range(60):
        numbers = " ".join(str(rng.randrange(10 ** rng.randrange(1, 16))) for _ in range(40))
        decimals = " ".join(f"{rng.random() * 10 ** rng.randrange(0, 9):.{rng.randrange(0, 6)}f}" for _ in range(20))
        docs.append(f"Numbers: {numbers}\nDecimals: {decimals}\nPhone +1-555-{rng.randrange(10**7):07d}, id#{rng.randrange(10**12)}\n")
    for _ in range(40):
        docs.append("".join(rng.choice(EMOJI) + rng.choice(["", " ", "  ", "\n", "ok", "中文"]) for _ in range(80)))
    for _ in range(40):
        pieces = []
        for _ in range(60):
            pieces.append(rng.choice(["word", "x", "\t", "é", "日本"]))
            pieces.append(rng.choice([" ", "  ", "    ", "\n", "\n\n", "\r\n", " \n ", "\t\t", "\u3000", "\u00a0", "        \n"]) * rng.randrange(1, 5))
        docs.append("".join(pieces))
    for _ in range(40):
        words = []
        for _ in range(50):
            words.append(rng.choice(["Hello", "世界", "x=1;", " ", "\n", "def f():", "「引用」"]))
            if rng.random() < 0.2:
                words.append(rng.choice(SPECIAL))
        docs.append("".join(words))
    return docs


def invalid_utf8(rng):
    """bytes documents holding ill-formed sequences: stray continuation bytes, truncated
    sequences, overlongs, surrogates, bytes above U+10FFFF."""
    bad = [b"\xff", b"\xfe", b"\x80", b"\xbf\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80",
           b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"\xe2\x82", b"\xc3", b"\xf8\x88\x80\x80\x80"]
    docs = []
    for _ in range(30):
        parts = []
        for _ in range(40):
            parts.append(rng.choice(["text ", "日本語", "emoji😀", " ", "\n", "123"]).encode("utf-8"))
            if rng.random() < 0.4:
                parts.append(rng.choice(bad))
        docs.append(b"".join(parts))
    return docs


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_corpus.py OUT")
    rng = random.Random(20261122)
    docs = []
    for path in ENGLISH + CODE:
        docs += [d.encode("utf-8") for d in cut(read_text(path))]
    for _, path in TRANSLATIONS:
        docs += [d.encode("utf-8") for d in cut(translations(path))]
    docs += [d.encode("utf-8") for d in generated(rng)]
    docs += invalid_utf8(rng)
    docs = [d.replace(b"\x1e", b" ") for d in docs if d]
    with open(sys.argv[1], "wb") as f:
        f.write(b"\x1e\n".join(docs))


if __name__ == "__main__":
    main()
