#!/usr/bin/env python3
"""Writes a chat dataset for measuring `sluice screen`'s speed (benches/RESULTS.md, README).

    benches/screen/make_chat_dataset.py OUT.jsonl [N]      (default N = 100000)

N OpenAI chat records (system, user, assistant; ~900 bytes each), drawn with a fixed seed from
the fixture classes' templates (fixtures/screen/make_fixtures.py), 1% of them hazardous
requests with refusals and 0.1% harmful pairs, the rest benign: the screen runs every stage on
realistic answers. The same bytes on every run.
"""
import importlib.util
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "make_fixtures", os.path.join(HERE, "../../fixtures/screen/make_fixtures.py"))
fixtures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixtures)


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    rng = random.Random(100)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for i in range(n):
            draw = rng.random()
            make = (fixtures.harmful if draw < 0.001 else
                    fixtures.refusal if draw < 0.011 else fixtures.benign)
            system, user, assistant = make(rng)
            # Longer answers, as real instruction data has: a benign paragraph appended.
            extra = " ".join(rng.choice(fixtures.BENIGN)[1] for _ in range(3))
            record = {"id": f"chat-{i}"}
            record.update(fixtures.chat(system or "You are a helpful assistant.", user,
                                        assistant + " " + extra))
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
