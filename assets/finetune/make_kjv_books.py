#!/usr/bin/env python3
"""The bundled instruction set: which book of the King James Bible a verse is from.

Short verses (at most 90 characters) of six books are drawn with a fixed seed from the bundled
corpus (../corpus/kjv.txt.zst, public domain) and written as {"prompt", "completion"} records:
  prompt      "Verse: <text>\\nBook:"
  completion  " <book>"
50 training and 10 test examples per book, train.jsonl and test.jsonl, the same bytes every run.

  zstdcat ../corpus/kjv.txt.zst | python3 make_kjv_books.py
"""
import json
import random
import sys

BOOKS = ["Genesis", "Exodus", "Psalms", "Proverbs", "Matthew", "John"]
TRAIN, TEST, MAX_CHARS = 50, 10, 90


def verses_by_book(text):
    verses = {b: [] for b in BOOKS}
    for block in text.split("\n\n"):  # a chapter: its title line ("1 Samuel 3"), then its verses
        lines = [line.strip() for line in block.strip().splitlines()]
        if not lines:
            continue
        book = lines[0].rsplit(" ", 1)[0]
        for line in lines[1:]:
            text = line.partition(" ")[2]
            if book in verses and len(text) <= MAX_CHARS:
                verses[book].append(text)
    return verses


def main():
    verses = verses_by_book(sys.stdin.read())
    rng = random.Random(2024)
    train, test = [], []
    for book in BOOKS:
        drawn = rng.sample(verses[book], TRAIN + TEST)
        records = [{"prompt": "Verse: %s\nBook:" % text, "completion": " " + book} for text in drawn]
        train += records[:TRAIN]
        test += records[TRAIN:]
    rng.shuffle(train)
    rng.shuffle(test)
    for name, records in (("train.jsonl", train), ("test.jsonl", test)):
        with open(name, "w") as out:
            for record in records:
                out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
