"""transformers as the oracle of the Hugging Face conversions: random tiny models built
from configs (no download), and logits on both sides."""

import os

import numpy as np
import torch

from bigmodels import checkpoint, models


def redraw(hf_model, norm_scales=()) -> None:
    """Every weight drawn at a scale where a wrong layout shows (HF's init leaves norms
    at 1 and 0 and logits near 0); weights whose names end with `norm_scales` near 1."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in hf_model.named_parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith(norm_scales) else 0.0))


def byte_bpe_tokenizer(directory, vocab_size: int) -> None:
    """A byte-level BPE of exactly `vocab_size` tokens, trained on this file, saved as
    `directory`/tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models as tok_models, pre_tokenizers, trainers
    tok = Tokenizer(tok_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([open(__file__).read() * 4], trainer)
    assert tok.get_vocab_size() == vocab_size
    tok.save(os.path.join(directory, "tokenizer.json"))


def ours(path):
    """(model, params, config) of an export or run."""
    config = checkpoint.read_config(path)
    return models.build(config.model), checkpoint.load(path), config


def logits(model, params, tokens):
    return np.asarray(model.apply({"params": params}, tokens))


def hf_logits(hf_model, tokens):
    with torch.no_grad():
        return hf_model(torch.tensor(tokens)).logits.numpy()


def hf_greedy(hf_model, prompt, new_tokens: int):
    with torch.no_grad():
        return hf_model.generate(torch.tensor(prompt), max_new_tokens=new_tokens,
                                 do_sample=False, pad_token_id=0).numpy()
