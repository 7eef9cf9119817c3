"""Device mesh, logical-axis rules and the shardings of state and batch.

Models name the axes of every parameter (`embed`, `mlp`, `heads`, ...). The rules
below map those logical names onto the mesh axes (`data`, `fsdp`, `tensor`), so
that DP, FSDP, TP and their mixes are a config change, not a model change. The rules
themselves are data too: `mesh.rules` overrides them per logical axis
(`rules_from_config`), as big_vision's and MaxText's configs do.
"""

import functools
import math

import jax
import numpy as np
from jax.experimental import mesh_utils
from flax import linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from bigmodels.errors import BadInput

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")     # the batch is split over every data-parallel axis

# logical axis -> mesh axis (or None = replicated). The first rule that fits wins.
LOGICAL_RULES = (
    ("batch", BATCH_AXES),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),  # grouped-query attention's key/value heads (dropped if fewer)
    ("kv", None),
    ("qkv", None),
    ("context", None),
    ("norm", None),
    ("length", None),
    ("layers", None),       # the stacked-layer axis of scanned blocks
    ("act_embed", None),    # activations' feature axis: whole on every device
)


def rules_from_config(mesh_config) -> tuple:
    """LOGICAL_RULES with `mesh_config.rules` applied: "embed=fsdp,mlp=tensor,vocab=" sets
    each named logical axis's rule in place (the rest keep theirs); an empty right side
    means replicated, `a+b` several mesh axes. BadInput for an unknown logical or mesh
    axis. The batch axis is not overridable: batches are always split over BATCH_AXES."""
    text = str(mesh_config.get("rules", "") or "")
    known = dict(LOGICAL_RULES)
    overrides = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        logical, eq, mesh_axes = (part.strip() for part in entry.partition("="))
        if not eq:
            raise BadInput(f"mesh.rules: {entry!r} is not logical_axis=mesh_axes "
                           f"(e.g. embed=fsdp, mlp=tensor, vocab= for replicated)")
        if logical not in known:
            raise BadInput(f"mesh.rules: unknown logical axis {logical!r} in {entry!r} "
                           f"(known: {', '.join(known)})")
        if logical == "batch":
            raise BadInput(f"mesh.rules: {entry!r}: the batch axis is always split over "
                           f"{'+'.join(BATCH_AXES)}")
        if logical in overrides:
            raise BadInput(f"mesh.rules: logical axis {logical!r} is given twice")
        names = tuple(a.strip() for a in mesh_axes.split("+")) if mesh_axes else ()
        for name in names:
            if name not in MESH_AXES:
                raise BadInput(f"mesh.rules: unknown mesh axis {name!r} in {entry!r} "
                               f"(known: {', '.join(MESH_AXES)}; empty = replicated)")
        if len(set(names)) != len(names):
            raise BadInput(f"mesh.rules: {entry!r} names a mesh axis twice")
        overrides[logical] = names[0] if len(names) == 1 else (names or None)
    return tuple((logical, overrides.get(logical, mesh_axes))
                 for logical, mesh_axes in LOGICAL_RULES)


def mesh_shape(mesh_config, num_devices: int) -> dict:
    """Resolves the config's axis sizes (one may be -1) against the device count."""
    sizes = {axis: int(mesh_config[axis]) for axis in MESH_AXES}
    unknown = [a for a, s in sizes.items() if s == -1]
    if len(unknown) > 1:
        raise BadInput(f"mesh: at most one axis may be -1, got {sizes}")
    if any(s == 0 or s < -1 for s in sizes.values()):
        raise BadInput(f"mesh: axis sizes must be positive or -1, got {sizes}")
    known = math.prod(s for s in sizes.values() if s != -1)
    if unknown:
        if num_devices % known:
            raise BadInput(f"mesh: {num_devices} devices cannot fill {sizes}")
        sizes[unknown[0]] = num_devices // known
    if math.prod(sizes.values()) != num_devices:
        raise BadInput(f"mesh: {sizes} needs {math.prod(sizes.values())} devices, "
                       f"but {num_devices} are available")
    return sizes


def make_mesh(mesh_config, devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    sizes = mesh_shape(mesh_config, len(devices))
    shape = tuple(sizes[a] for a in MESH_AXES)
    try:
        grid = mesh_utils.create_device_mesh(shape, devices)
    except (ValueError, NotImplementedError, AssertionError):
        grid = np.asarray(devices).reshape(shape)   # device subsets with no known topology
    return Mesh(grid, MESH_AXES)


def data_parallel_size(mesh: Mesh) -> int:
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def _fit_to_shape(spec: P, shape, mesh: Mesh) -> P:
    """Drops mesh axes that do not divide their dimension (e.g. a vocab of 65 on tensor=2)."""
    fitted = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        names = (axes,) if isinstance(axes, str) else tuple(axes or ())
        kept, size = [], 1
        for name in names:
            if dim % (size * mesh.shape[name]) == 0:
                kept.append(name)
                size *= mesh.shape[name]
        fitted.append(tuple(kept) if len(kept) > 1 else (kept[0] if kept else None))
    return P(*fitted)


def logical_shardings(abstract_tree, mesh: Mesh, rules=LOGICAL_RULES):
    """NamedShardings for a tree whose leaves may be `nn.LogicallyPartitioned` boxes,
    mapped onto `mesh` by `rules` (e.g. `rules_from_config(config.mesh)`)."""
    specs = nn.get_partition_spec(abstract_tree)
    mesh_specs = nn.logical_to_mesh(specs, rules)
    shapes = nn.meta.unbox(abstract_tree)

    def to_sharding(spec, leaf):
        spec = spec if isinstance(spec, P) else P()
        return NamedSharding(mesh, _fit_to_shape(spec, leaf.shape, mesh))

    return jax.tree.map(to_sharding, mesh_specs, shapes,
                        is_leaf=lambda x: isinstance(x, P) or x is None)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def with_activation_rules(fn, mesh: Mesh, rules=LOGICAL_RULES):
    """`fn`, traced with `mesh` and `rules` in context, so that the activation
    constraints in the models (`nn.with_logical_constraint(x, ("batch", "length",
    "act_embed"))`) take effect: activations stay sharded over the batch axes. Left to
    itself, the SPMD partitioner may instead follow an FSDP weight's layout and
    replicate activations (3.4x the temporary memory of a 4-layer GPT-2 step on
    fsdp=8). Outside such a function the constraints are no-ops."""
    @functools.wraps(fn)
    def traced(*args):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), \
                nn.logical_axis_rules(rules):
            return fn(*args)
    return traced


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
    """Host-local numpy batch -> global jax.Arrays sharded over the batch axes."""
    return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim), v)
            for k, v in local_batch.items()}
