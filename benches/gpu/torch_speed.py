#!/usr/bin/env python3
"""PyTorch reference for benches/gpu/run.sh: the same random BERT (benches/gpu/make_model.py)
through `transformers` on the GPU, f32, batches of windows of exactly `tokens` tokens. Prints
one JSON object: tokens/s per shape (best of 3 timed passes of 20 batches each).

    python3 benches/gpu/torch_speed.py MODEL_DIR
"""

import json
import sys
import time

import torch
from transformers import BertForSequenceClassification


def main() -> None:
    model = BertForSequenceClassification.from_pretrained(sys.argv[1]).cuda().eval()
    results = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}
    for batch, tokens in [(32, 128), (64, 256), (256, 256)]:
        ids = torch.randint(5, 30000, (batch, tokens), device="cuda")
        mask = torch.ones_like(ids)
        with torch.no_grad():
            for _ in range(3):
                model(input_ids=ids, attention_mask=mask)
            best = float("inf")
            for _ in range(3):
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(20):
                    model(input_ids=ids, attention_mask=mask)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
        results[f"{batch}x{tokens}"] = round(20 * batch * tokens / best)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
