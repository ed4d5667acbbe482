"""Write a byte-level tokenizer (256 byte tokens, no merges) as a local Hugging Face tokenizer.

Runs in a tool's virtualenv (needs ``tokenizers``); makes no network request. AIPerf and
guidellm need a tokenizer to synthesize prompts and would fetch one from a hub; this one is
built here instead. ``python make_tokenizer.py HF_HOME NAME`` writes it both as a plain folder
(``HF_HOME/local/NAME``) and as a snapshot in the hub cache layout under ``HF_HOME/hub`` (so
``--tokenizer NAME`` resolves with ``HF_HUB_OFFLINE=1``). Prints the folder.
"""
import json
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

_REV = "0" * 40


def main(home: str, name: str) -> None:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>", "bos_token": "<s>",
              "eos_token": "</s>", "model_max_length": 10**7}
    plain = Path(home) / "local" / name
    snap = Path(home) / "hub" / ("models--" + name.replace("/", "--"))
    for folder in (plain, snap / "snapshots" / _REV):
        folder.mkdir(parents=True, exist_ok=True)
        tok.save(str(folder / "tokenizer.json"))
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (snap / "refs").mkdir(exist_ok=True)
    (snap / "refs" / "main").write_text(_REV)
    print(plain)


if __name__ == "__main__":
    main(*sys.argv[1:3])
