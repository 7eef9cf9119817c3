"""FLOPs per token and MFU, written down once for every family.

Training FLOPs per token of a Transformer (Kaplan et al. 2020; nanoGPT `estimate_mfu`):

    6 * N_matmul                     forward (2) + backward (4) FLOPs per matmul parameter
  + 12 * num_layers * context * d    attention scores and values, Q.K^T and A.V, fwd+bwd,
                                     counted over the full (not causally halved) square

N_matmul counts every parameter used in a matmul: all 2-D+ kernels, plus the token
embedding when it is tied to the output head; lookup-only tables (positions, an untied
token embedding) are excluded.

MFU = achieved FLOPs/s / (peak FLOPs/s per device * devices), with the dense bf16
peak for accelerators (never the sparse or fp8 figure).
"""

import jax
import numpy as np

# Dense peak FLOP/s per device. CPU has no published peak: we use the dense f32 matmul
# rate measured on the project's 2-core CI machine (about 150-180 GFLOP/s for the whole
# host, ../shared/REFERENCE_NUMBERS.md), shared by however many fake devices exist.
PEAK_FLOPS = {
    "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12,
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
    "TPU v6 lite": 918e12, "TPU v6e": 918e12,
}
CPU_HOST_PEAK_FLOPS = 160e9


SCANNED_LAYERS = "blocks"   # nn.scan'ed blocks: every leaf has a leading layer axis


def matmul_param_count(params, lookup_only=("pos_embed",)) -> int:
    """Parameters used in matmuls: leaves with >= 2 dims outside lookup-only tables
    (not counting the stacked-layer axis of scanned blocks, so a stacked bias is
    still a bias)."""
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        names = [getattr(k, "key", str(k)) for k in path]
        ndim = np.ndim(leaf) - (SCANNED_LAYERS in names)
        if ndim >= 2 and not any(n in lookup_only for n in names):
            total += int(np.prod(np.shape(leaf)))
    return total


def conv_forward(kernel, output_positions: int) -> float:
    """Forward FLOPs of a convolution: 2 x kernel size (kh * kw * C_in * C_out) per
    output position, counting every tap, also those over zero padding (or, for a
    transposed conv, over the zeros between dilated inputs), as a dense kernel
    computes them. Bias adds are left out."""
    return 2.0 * output_positions * float(np.prod(np.shape(kernel)))


def transformer_train_flops_per_token(n_matmul: int, num_layers: int, context: int,
                                      embed_dim: int) -> float:
    return 6.0 * n_matmul + 12.0 * num_layers * context * embed_dim


def peak_flops_per_device(override: float = 0.0) -> float:
    if override > 0:
        return override
    device = jax.devices()[0]
    if device.platform == "cpu":
        return CPU_HOST_PEAK_FLOPS / jax.local_device_count()
    for name, peak in PEAK_FLOPS.items():
        if name.lower() in device.device_kind.lower():
            return peak
    return 0.0   # unknown accelerator: MFU is not reported


def mfu(flops_per_step: float, step_time_s: float, override: float = 0.0) -> float:
    peak = peak_flops_per_device(override) * jax.device_count()
    return flops_per_step / step_time_s / peak if peak and step_time_s > 0 else 0.0
