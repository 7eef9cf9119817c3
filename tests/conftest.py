"""Tests run on CPU with 8 fake devices; this must happen before jax is imported."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory):
    """Prepared TFDS datasets go to a per-session temp dir, never the user's cache."""
    os.environ["BIGMODELS_DATA_DIR"] = str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> str:
    """A small real-text corpus: this repository's own Python sources."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "bigmodels").rglob("*.py")))
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(text * 2)
    return str(path)
