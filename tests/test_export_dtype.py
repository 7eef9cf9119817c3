"""Smaller exports (bigmodels.export --dtype, --sparse): bfloat16 halves the file and
reads back as written; --sparse stores mostly-zero arrays as a packed bitmask plus the
nonzero values and reads back exactly; int4 packs two values a byte."""

import glob
import os

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from bigmodels import checkpoint
from bigmodels.checkpoint import packing, tree
from bigmodels.checkpoint.exports import save_params
from bigmodels.errors import BadInput
from bigmodels.export import export
from helpers import train_wide_tiny_quickstart


def _bytes(directory) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(directory, "**"),
                                                     recursive=True) if os.path.isfile(p))


def _sparse(shape, fraction, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape).astype(np.float32)
    w[rng.random(shape) < fraction] = 0.0
    return w


def test_packing_round_trips_exactly():
    rng = np.random.default_rng(0)
    for shape in [(7,), (3, 5), (2, 3, 4)]:              # odd sizes pad the last byte
        x = rng.integers(-8, 8, size=shape).astype(ml_dtypes.int4)
        packed = packing.pack_int4(x)
        assert packed["int4_packed"].nbytes == (x.size + 1) // 2
        y = packing.unpack_int4(packed)
        assert y.dtype == x.dtype and np.array_equal(y.astype(np.int8), x.astype(np.int8))
    w = _sparse((64, 48), 0.9)
    back = packing.unpack_sparse(packing.pack_sparse(w))
    assert back.dtype == w.dtype and np.array_equal(back, w)
    assert packing.sparse_saves(w) and not packing.sparse_saves(_sparse((64, 48), 0.0))
    tree_ = {"a": {"kernel": w, "bias": np.ones(3, np.float32)}, "q": x}
    packed = packing.pack_tree(tree_, sparse=True)
    assert packing.is_packed(packed["a"]["kernel"]) and packing.is_packed(packed["q"])
    assert not packing.is_packed(packed["a"]["bias"])
    restored = packing.unpack_tree(packed)
    for name, value in tree.flatten(tree_).items():
        assert np.array_equal(tree.flatten(restored)[name].astype(np.float32),
                              value.astype(np.float32))


def test_a_90_percent_sparse_kernel_on_disk(tmp_path):
    w = _sparse((512, 512), 0.9)
    save_params(str(tmp_path / "dense"), {"kernel": w})
    save_params(str(tmp_path / "sparse"), packing.pack_tree({"kernel": w}, sparse=True))
    dense, sparse = _bytes(tmp_path / "dense"), _bytes(tmp_path / "sparse")
    print(f"90%-sparse 512x512 float32 kernel: dense {dense} B, sparse {sparse} B "
          f"({sparse / dense:.3f}x)")
    # orbax compresses the dense zeros already (1 MB raw), so the gain over it is smaller.
    assert sparse < 0.9 * dense and sparse < 0.15 * w.nbytes
    np.testing.assert_array_equal(checkpoint.load(str(tmp_path / "sparse"))["kernel"], w)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_wide_tiny_quickstart(str(tmp_path_factory.mktemp("run")))


def test_bfloat16_export_halves_the_file_and_reads_back(run, tmp_path):
    f32 = export(run, str(tmp_path / "f32"))
    bf16 = export(run, str(tmp_path / "bf16"), dtype="bfloat16")
    assert _bytes(bf16) < 0.55 * _bytes(f32)
    loaded, expected = tree.flatten(checkpoint.load(bf16)), tree.flatten(checkpoint.load(f32))
    assert set(loaded) == set(expected)
    for name, x in expected.items():
        assert loaded[name].dtype == jnp.bfloat16, name
        np.testing.assert_array_equal(loaded[name], x.astype(jnp.bfloat16))


def test_sparse_export_of_a_pruned_export_is_exact_and_smaller(run, tmp_path):
    def prune(params):      # 90% of each kernel exactly zero, as prune.py leaves them
        return tree.unflatten({n: _sparse(x.shape, 0.9, i) * x if n.endswith("kernel") else x
                               for i, (n, x) in enumerate(tree.flatten(params).items())})
    pruned = checkpoint.export_params(run, str(tmp_path / "pruned"), transform=prune,
                                      run_files=True)
    sparse = export(pruned, str(tmp_path / "sparse"), sparse=True)
    print(f"90%-sparse kernels: pruned export {_bytes(pruned)} B, --sparse {_bytes(sparse)} B")
    assert _bytes(sparse) < 0.9 * _bytes(pruned)
    loaded, expected = tree.flatten(checkpoint.load(sparse)), tree.flatten(checkpoint.load(pruned))
    assert set(loaded) == set(expected)
    for name, x in expected.items():
        assert loaded[name].dtype == x.dtype
        np.testing.assert_array_equal(loaded[name], x, err_msg=name)


def test_bad_dtype_and_plain_re_export_are_refused(run, tmp_path):
    with pytest.raises(BadInput, match="^--dtype: unknown dtype 'fp8'"):
        export(run, str(tmp_path / "x"), dtype="fp8")
    out = export(run, str(tmp_path / "f32"))
    with pytest.raises(BadInput, match="already an export"):
        export(out, str(tmp_path / "again"))
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "again")
