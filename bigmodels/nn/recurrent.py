"""Stacked, optionally bidirectional LSTM or GRU layers through `flax.linen.RNN`.

Padding: `lengths_B` gives each sequence's valid length. `nn.RNN` then stops updating a
sequence's carry after its last valid step, and the backward direction of a
bidirectional layer reverses only the valid part, so the outputs at valid positions do
not depend on the padding (tests/test_rnn.py checks this). Outputs at padded positions
are zeroed.
"""

import jax.numpy as jnp
from flax import linen as nn

from bigmodels.nn.initializers import normal, zeros

CELLS = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}


def make_cell(kind: str, hidden_dim: int, dtype, name: str):
    if kind not in CELLS:
        raise ValueError(f"unknown recurrent cell {kind!r} (known: {', '.join(CELLS)})")
    # Logical axes so that FSDP and TP can shard the gate kernels like MLP kernels.
    return CELLS[kind](hidden_dim, kernel_init=normal(0.02, ("embed", "mlp")),
                       recurrent_kernel_init=nn.with_logical_partitioning(
                           nn.initializers.orthogonal(), ("embed", "mlp")),
                       bias_init=zeros(("mlp",)), dtype=dtype, param_dtype=jnp.float32,
                       name=name)


class RecurrentStack(nn.Module):
    cell: str = "lstm"            # lstm | gru
    hidden_dim: int = 256
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0          # between layers
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxD, lengths_B=None, train: bool = False, initial_carries=None):
        """Returns (outputs B x T x H (2H if bidirectional), final carries per layer).

        `initial_carries` (unidirectional only) continues from earlier carries, which is
        how a language model decodes one token at a time.
        """
        carries = []
        x = x_BxTxD
        for i in range(self.num_layers):
            forward = nn.RNN(make_cell(self.cell, self.hidden_dim, self.dtype, f"cell_{i}"),
                             return_carry=True, name=f"layer_{i}")
            if self.bidirectional:
                backward = nn.RNN(make_cell(self.cell, self.hidden_dim, self.dtype,
                                            f"cell_{i}_backward"),
                                  return_carry=True, reverse=True, keep_order=True,
                                  name=f"layer_{i}_backward")
                carry_f, out_f = forward(x, seq_lengths=lengths_B)
                carry_b, out_b = backward(x, seq_lengths=lengths_B)
                carries.append((carry_f, carry_b))
                out = jnp.concatenate([out_f, out_b], axis=-1)
            else:
                init = None if initial_carries is None else initial_carries[i]
                carry, out = forward(x, seq_lengths=lengths_B, initial_carry=init)
                carries.append(carry)
            if i < self.num_layers - 1:
                out = nn.Dropout(self.dropout, deterministic=not train)(out)
            x = out
        if lengths_B is not None:
            valid = jnp.arange(x.shape[1])[None, :] < lengths_B[:, None]
            x = jnp.where(valid[..., None], x, 0)
        return x, tuple(carries)
