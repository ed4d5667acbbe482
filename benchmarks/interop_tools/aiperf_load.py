"""Load exported workloads with AIPerf's own loader classes; print what they hold as JSON.

Runs inside the interop virtualenv (AIPerf installed there, servelab not), offline:
``python aiperf_load.py TOKENIZER FORMAT:PATH [FORMAT:PATH ...]`` where FORMAT is ``mooncake``,
``aiperf`` (both read by ``MooncakeTraceDatasetLoader``) or ``burstgpt``
(``BurstGPTTraceDatasetLoader``). For each file: the loader's ``load_dataset()`` (AIPerf's
parsing, validation and session grouping), then ``convert_to_conversations()`` (AIPerf's
conversations, prompts synthesized from hash_ids with the given tokenizer). Output, one JSON
object: per file the sessions in AIPerf's order, each a list of turns with the trace fields
and the built Turn's timestamp, delay, max_tokens and prompt token count.
"""
import json
import sys
import time


def main(argv):
    tokenizer_name, jobs = argv[0], argv[1:]
    t0 = time.perf_counter()
    from aiperf.common import random_generator as rng
    from aiperf.common.tokenizer import Tokenizer
    from aiperf.dataset.generator.prompt import PromptGenerator
    from aiperf.dataset.loader.burst_gpt import BurstGPTTraceDatasetLoader
    from aiperf.dataset.loader.mooncake_trace import MooncakeTraceDatasetLoader

    rng.init(7)
    tok = Tokenizer.from_pretrained(tokenizer_name)
    out = {"import_s": time.perf_counter() - t0, "files": {}}
    loaders = {"mooncake": MooncakeTraceDatasetLoader, "aiperf": MooncakeTraceDatasetLoader,
               "burstgpt": BurstGPTTraceDatasetLoader}
    # one generator for every file: its set-up tokenizes AIPerf's corpus (most of a file's time)
    pg = PromptGenerator(prompts=None, prefix_prompts=None, tokenizer=tok)
    out["generator_s"] = time.perf_counter() - t0 - out["import_s"]
    for job in jobs:
        fmt, path = job.split(":", 1)
        t = time.perf_counter()
        loader = loaders[fmt](filename=path, prompt_generator=pg)
        try:
            data = loader.load_dataset()
            convs = loader.convert_to_conversations(data)
        except Exception as err:  # reported, not raised: the caller tabulates it
            msg = " ".join(str(err).split())
            out["files"][job] = {"loader": type(loader).__name__, "error": f"{type(err).__name__}: {msg[:300]}",
                                 "seconds": time.perf_counter() - t}
            continue
        sessions = []
        for conv, (sid, traces) in zip(convs, data.items()):
            turns = []
            for trace, turn in zip(traces, conv.turns):
                prompt = turn.texts[0].contents[0] if turn.texts else ""
                turns.append({
                    "input_length": getattr(trace, "input_length", None),
                    "output_length": getattr(trace, "output_length", None),
                    "hash_ids": getattr(trace, "hash_ids", None),
                    "timestamp": turn.timestamp, "delay": turn.delay, "max_tokens": turn.max_tokens,
                    "prompt_tokens": len(tok.encode(prompt, add_special_tokens=False)),
                })
            sessions.append({"session_id": conv.session_id, "trace_session": sid, "turns": turns})
        out["files"][job] = {"loader": type(loader).__name__, "sessions": sessions,
                             "seconds": time.perf_counter() - t,
                             "can_load_first": bool(loaders[fmt].can_load(
                                 data=None if fmt == "burstgpt" else json.loads(open(path).readline()),
                                 filename=path))}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
