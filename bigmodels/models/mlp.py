"""A multilayer perceptron for feature rows or small images (flattened).

Hidden layers alternate kernel axes ("embed", "mlp") and ("mlp", "embed"), as a
Transformer's MLP does, so FSDP shards one axis and tensor parallelism the other. The
head's outputs are few (classes or 1) and stay unsharded.

With `batch_norm`, each hidden layer is Dense (no bias) -> BatchNorm -> activation ->
dropout. BatchNorm's running means and variances are model state (`batch_stats`), as in
the ResNet: training normalises with the batch's statistics, eval with the running
averages.
"""

import math

import jax.numpy as jnp
from flax import linen as nn

from bigmodels import flops
from bigmodels.errors import BadInput
from bigmodels.models import model_config
from bigmodels.nn.dense import Dense
from bigmodels.nn.initializers import ones, zeros

ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu, "tanh": jnp.tanh}
# Init variance gain per activation (He for ReLU; LeCun for the others), so the signal
# neither dies nor explodes through the layers at step 0.
GAINS = {"relu": 2.0, "gelu": 2.0, "tanh": 1.0}


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise BadInput(f"model.activation must be one of {tuple(ACTIVATIONS)}, "
                       f"got {activation!r}")


class MLP(nn.Module):
    num_classes: int                  # outputs: classes (config 0: from the data), or 1
    hidden: tuple = (128, 64, 32)
    activation: str = "relu"          # relu | gelu | tanh
    dropout: float = 0.0
    batch_norm: bool = False          # BatchNorm after each hidden Dense, before the activation
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        """B x ... (features or an image) -> B x num_classes float32 logits."""
        check_activation(self.activation)
        x = x.reshape(x.shape[0], -1).astype(self.dtype)
        act = ACTIVATIONS[self.activation]
        axes = ("embed", "mlp")
        for i, width in enumerate(self.hidden):
            std = math.sqrt(GAINS[self.activation] / x.shape[-1])
            # BatchNorm's shift makes the Dense bias redundant.
            x = Dense(width, axes, init_std=std, use_bias=not self.batch_norm, dtype=self.dtype,
                      name=f"dense_{i}")(x)
            if self.batch_norm:
                # Momentum 0.9, as the ResNet's: short runs need running averages that keep up.
                x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                 dtype=self.dtype, scale_init=ones((axes[1],)),
                                 bias_init=zeros((axes[1],)), name=f"batch_norm_{i}")(x)
            x = act(x)
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
            axes = axes[::-1]
        std = math.sqrt(1.0 / x.shape[-1])
        out = Dense(self.num_classes, (axes[0], None), init_std=std, dtype=self.dtype,
                    name="head")(x)
        return out.astype(jnp.float32)

    def train_flops_per_token(self, params, seq_len: int = 1) -> float:
        """Per example: 6 FLOPs per kernel parameter (forward 2, backward 4)."""
        return 6.0 * flops.matmul_param_count(params)


def mlp_config(name: str = "mlp", **overrides):
    """The `config.model` of an MLP: the module's field defaults,
    then `overrides` (bigmodels/models/config_factory.py)."""
    return model_config(name, **overrides)
