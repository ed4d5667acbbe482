"""Run AIPerf's trace synthesizer (aiperf/dataset/synthesis) on a Mooncake JSONL file.

Runs inside the AIPerf virtualenv (servelab is not installed there), offline:
``python aiperf_synthesize.py INPUT OUTPUT SEED``. Uses ``Synthesizer(SynthesisParams(block_size=
512))`` at its default multipliers (what ``aiperf profile --synthesis-*`` applies when no
multiplier is given) and writes one JSON object per synthetic request. Prints one JSON object:
``requests``, ``seconds`` (synthesis time, import excluded).
"""
import json
import sys
import time


def main(argv):
    src, dst, seed = argv[0], argv[1], int(argv[2])
    import orjson
    from aiperf.common import random_generator as rng
    from aiperf.dataset.synthesis.models import SynthesisParams
    from aiperf.dataset.synthesis.synthesizer import Synthesizer

    rng.init(seed)
    t0 = time.perf_counter()
    out = Synthesizer(SynthesisParams(block_size=512)).synthesize_from_file(src)
    seconds = time.perf_counter() - t0
    with open(dst, "wb") as fh:
        for row in out:
            fh.write(orjson.dumps(row) + b"\n")
    print(json.dumps({"requests": len(out), "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1:])
