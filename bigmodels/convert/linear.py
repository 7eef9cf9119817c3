"""Transforms between PyTorch `nn.Linear` weights, (out, in), and our Dense kernels,
(in, out...), shared by the key maps of the architectures stored that way (Llama, BERT,
ViT, T5). Each takes (array, dims), `dims` being the architecture's head counts."""

from bigmodels.convert.key_map import Row


def transpose(array, dims):
    return array.T


def heads_in(key: str = "heads"):
    """(N*hd, D) -> (D, N, hd), or a bias (N*hd,) -> (N, hd), N = dims[key]: a q, k or v
    projection into heads."""
    def to_ours(array, dims):
        if array.ndim == 1:
            return array.reshape(dims[key], -1)
        return array.T.reshape(array.shape[1], dims[key], -1)
    return to_ours


def heads_out(array, dims):
    """The inverse of `heads_in`: (D, N, hd) -> (N*hd, D); (N, hd) -> (N*hd,)."""
    if array.ndim == 2:
        return array.reshape(-1)
    return array.reshape(array.shape[0], -1).T


def out_in(array, dims):
    """The attention output (D, N*hd) -> (N, hd, D)."""
    return array.T.reshape(dims["heads"], -1, array.shape[0])


def out_out(array, dims):
    return array.reshape(-1, array.shape[-1]).T


def linear(hf: str, ours: str) -> list[Row]:
    """An nn.Linear with bias: weight and bias rows."""
    return [Row(f"{hf}.weight", f"{ours}/kernel", transpose, transpose),
            Row(f"{hf}.bias", f"{ours}/bias")]
