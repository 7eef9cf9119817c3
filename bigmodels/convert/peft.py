"""A LoRA run's adapters in the format of the peft library:

    python -m bigmodels.convert --to_peft=<new dir> --workdir=<LoRA run> [--step=N]

writes `adapter_model.safetensors` and `adapter_config.json`, which
`peft.PeftModel.from_pretrained(<base as a transformers model>, <dir>)` loads. The base
is the run's `lora.base` (the config's `base_model_name_or_path`); `--to_hf` converts it
for transformers. A QLoRA run's adapters were trained on the quantized base, so over
the float one they give close, not equal, logits.

Each adapted Dense maps to the Hugging Face modules its kernel maps to (the
architecture's key map); the layout there is checked with a probe, so a kernel whose
weights hold whole input rows, (in, out) as GPT-2's Conv1D or (out, in) as nn.Linear,
is exported (a fused one as its parts: Llama's q, k and v share A and split B), and
anything else is refused. Tested: GPT-2 and Llama.
"""

import json
import math
import os

import numpy as np
from safetensors.numpy import save_file

from bigmodels.checkpoint import exports, load, tree
from bigmodels.convert import hf
from bigmodels.errors import BadInput
from bigmodels.nn import lora

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
PREFIX = "base_model.model."          # peft's name for the wrapped transformers model
TASK_TYPES = {"causal_lm": "CAUSAL_LM"}


def hf_modules(keys, module: str, kernel_shape: tuple, n_in: int, dims: dict) -> list:
    """[(HF module name, fan_in_fan_out, our output columns it holds)] of our Dense
    `module`: where the key map sends a probe kernel whose entries are their own flat
    (input, output) index. Each HF weight must hold whole input rows of some output
    columns, as (in, out) (GPT-2's Conv1D: fan_in_fan_out) or (out, in) (nn.Linear);
    a fused kernel (Llama's q, k and v in `qkv`) gives one module per part."""
    n_rows, n_cols = math.prod(kernel_shape[:n_in]), math.prod(kernel_shape[n_in:])
    probe = np.arange(n_rows * n_cols, dtype=np.float64).reshape(kernel_shape)
    try:
        out = keys.to_hf({f"{module}/kernel": probe}, dims)
    except BadInput:
        out = {}
    found = []
    for name, weight in sorted(out.items()):
        layout = _layout(weight, n_rows, n_cols) if name.endswith(".weight") else None
        if layout is None:
            return _refuse(module)
        found.append((name[:-len(".weight")], *layout))
    return found or _refuse(module)


def _layout(weight, n_rows: int, n_cols: int):
    """(fan_in_fan_out, our output columns) when the probe `weight` holds every input
    row of some output columns, as (in, out) or as (out, in); else None."""
    if weight.ndim != 2 or not np.array_equal(weight, np.round(weight)):
        return None                           # a transform that scales is not a layout
    rows, cols = np.divmod(weight.astype(np.int64), n_cols)
    for fan_in_fan_out, r, c in ((True, rows, cols), (False, rows.T, cols.T)):
        if (r.shape[0] == n_rows and (r == np.arange(n_rows)[:, None]).all()
                and (c == c[:1]).all()):
            return fan_in_fan_out, c[0]
    return None


def _refuse(module: str):
    raise BadInput(f"--to_peft: {module}'s kernel is not the weight of Hugging Face "
                   f"modules (whole input rows, in either layout), so its adapters cannot "
                   f"be exported")


def adapter_tensors(params, keys, dims) -> tuple[dict, list, bool]:
    """({peft tensor name: array}, HF module names, fan_in_fan_out) of the adapters."""
    flat = tree.flatten(lora.split(params)[0])
    tensors, modules, layouts = {}, [], set()
    for name in sorted(n[:-len("/lora_a")] for n in flat if n.endswith("/lora_a")):
        a, b = np.asarray(flat[f"{name}/lora_a"]), np.asarray(flat[f"{name}/lora_b"])
        rank, n_in = b.shape[0], a.ndim - 1
        for module, fan_in_fan_out, cols in hf_modules(keys, name, a.shape[:-1] + b.shape[1:],
                                                       n_in, dims):
            # peft: lora_A.weight is (rank, in), lora_B.weight (out, rank), either layout;
            # the parts of a fused kernel share A and take their columns of B.
            # Contiguous copies: safetensors writes an array's buffer in its memory order.
            tensors[f"{PREFIX}{module}.lora_A.weight"] = np.ascontiguousarray(
                a.reshape(-1, rank).T, np.float32)
            tensors[f"{PREFIX}{module}.lora_B.weight"] = np.ascontiguousarray(
                b.reshape(rank, -1)[:, cols].T, np.float32)
            modules.append(module)
            layouts.add(fan_in_fan_out)
    if len(layouts) > 1:
        raise BadInput("--to_peft: the adapted modules mix (in, out) and (out, in) layouts")
    return tensors, modules, layouts.pop()


def peft_config(lora_config, modules: list, fan_in_fan_out: bool, task: str) -> dict:
    return {"peft_type": "LORA", "task_type": TASK_TYPES.get(task),
            "base_model_name_or_path": lora_config.base or None,
            "r": int(lora_config.rank), "lora_alpha": float(lora_config.alpha),
            "lora_dropout": float(lora_config.dropout), "target_modules": modules,
            "fan_in_fan_out": fan_in_fan_out, "bias": "none", "use_rslora": False,
            "use_dora": False, "modules_to_save": None, "init_lora_weights": True,
            "inference_mode": True}


def export_peft(workdir: str, out_dir: str, step: int | None = None) -> str:
    """Writes the adapters of the LoRA run at `workdir` for peft at `out_dir`."""
    exports.check_export_out(out_dir)
    source = exports.run_dir(workdir, step)
    config = exports.read_config(source)
    if config.get("lora") is None or config.lora.rank <= 0:
        raise BadInput(f"--to_peft: {workdir} is not a LoRA run (lora.rank is 0); an "
                       f"export of one is merged already: use --to_hf")
    arch = hf.export_family(config.model)
    params = load(workdir, step)
    if config.model.get("scan_layers"):
        from bigmodels.nn.transformer import unstack_layers
        params = unstack_layers(params, config.model.num_layers)
    tensors, modules, fan_in_fan_out = adapter_tensors(params, arch.keys(config.model),
                                                        arch.dims(config.model))
    adapter_config = peft_config(config.lora, modules, fan_in_fan_out, config.task)

    def write(tmp: str) -> None:
        save_file(tensors, os.path.join(tmp, ADAPTER_WEIGHTS), metadata={"format": "pt"})
        with open(os.path.join(tmp, ADAPTER_CONFIG), "w") as f:
            json.dump(adapter_config, f, indent=2)
    return exports.write_atomically(out_dir, write)
