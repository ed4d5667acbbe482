"""Load exported workloads with guidellm's own data classes; print what they hold as JSON.

Runs inside guidellm's virtualenv, offline: ``python guidellm_load.py TOKENIZER_DIR FORMAT:PATH ...``
with FORMAT ``mooncake`` (guidellm's ``mooncake`` trace reader, ``TraceDatasetDeserializer``,
prompts synthesized from hash_ids) or ``guidellm`` (``JSONFileDatasetDeserializer`` and the
``GenerativeColumnMapper`` defaults). Paths must end in ``.jsonl``. Output: per file the rows
in guidellm's order with their token counts, relative timestamps and prompt token counts.
"""
import json
import sys
import time


def _mooncake(path, tok):
    from guidellm.data.deserializers.trace_common import TraceDatasetDeserializer
    from guidellm.schemas.data.deserializers.file import FileDataArgs
    from guidellm.schemas.data.deserializers.trace_mooncake import MooncakeTraceFormatArgs

    cfg = MooncakeTraceFormatArgs(source=FileDataArgs(kind="json_file", path=path))
    rows = []
    for row in TraceDatasetDeserializer()(cfg, processor_factory=lambda: tok, random_seed=1):
        for turn in json.loads(row["conversation_turns"])["turns"]:
            c = turn["columns"]
            rows.append({"input_length": c["prompt_tokens_count_column"][0],
                         "output_length": c["output_tokens_count_column"][0],
                         "relative_timestamp": c["relative_timestamp_column"][0],
                         "prompt_tokens": len(tok.encode(c["text_column"][0], add_special_tokens=False))})
    return {"loader": "TraceDatasetDeserializer/MooncakeTraceFormat", "rows": rows}


def _guidellm(path, tok):
    from guidellm.data.deserializers.file import JSONFileDatasetDeserializer
    from guidellm.data.preprocessors.mappers import GenerativeColumnMapper
    from guidellm.schemas.data.deserializers.file import FileDataArgs

    ds = JSONFileDatasetDeserializer()(FileDataArgs(kind="json_file", path=path), processor_factory=lambda: tok,
                                       random_seed=1)
    ds = ds["train"] if hasattr(ds, "keys") and "train" in ds else ds
    mapping = GenerativeColumnMapper.datasets_mappings([ds])
    col = {k[0]: v[0][1] for k, v in mapping.items()}
    rows = [{"input_length": r[col["prompt_tokens_count_column"]],
             "output_length": r[col["output_tokens_count_column"]],
             "relative_timestamp": r[col["relative_timestamp_column"]],
             "prompt_words": len(r[col["text_column"]].split())} for r in ds]
    return {"loader": "JSONFileDatasetDeserializer+GenerativeColumnMapper", "mapping": col, "rows": rows}


def main(argv):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(argv[0])
    out = {"files": {}}
    for job in argv[1:]:
        fmt, path = job.split(":", 1)
        t = time.perf_counter()
        out["files"][job] = {**(_mooncake if fmt == "mooncake" else _guidellm)(path, tok),
                             "seconds": time.perf_counter() - t}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
