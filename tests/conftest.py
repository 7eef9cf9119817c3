"""Tests run on CPU with 8 fake devices; this must happen before jax is imported."""

import os

# The tests' programs are tiny and compiled once or twice each, so compiling dominates
# their time. LLVM's backend optimisations off cut a test's CPU time by about a third
# (tests/test_accumulation.py + test_regimes.py: 52 -> 35 CPU s). XLA:CPU's older
# elemental emitters in place of its MLIR fusion emitters cut compiling by another third
# (the train steps of five :tiny experiments, `benchmarks/compile_time.py`: 22-26 -> 15
# CPU s; the suite: 909 -> 742 s on 2 cores). Only code generation changes, not the HLO
# passes, so sharding, memory and bit-equality checks are unaffected. Subprocesses that
# set XLA_FLAGS of their own keep these (FAST_COMPILE_FLAGS).
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8 " +
                           FAST_COMPILE_FLAGS).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory):
    """Prepared TFDS datasets go to a per-session temp dir, never the user's cache."""
    os.environ["BIGMODELS_DATA_DIR"] = str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
    """Compiled programs are kept for the session in a directory of this process's own
    (each xdist worker has one; subprocesses compile afresh, but for the fault tests'
    restarts, which share one per test): the many runs that repeat
    a config (resume, fine-tune and refusal tests, shared fixtures) compile it once.
    Compiling dominates these tests' time. BIGMODELS_TEST_COMPILATION_CACHE=0 turns it
    off; `fresh_compiles` turns it off for one test."""
    if os.environ.get("BIGMODELS_TEST_COMPILATION_CACHE", "1") == "0":
        yield
        return
    import jax
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.25)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield


@pytest.fixture
def fresh_compiles():
    """Every program the test runs is compiled anew, none read from the cache above."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    def enable(on: bool):
        jax.config.update("jax_enable_compilation_cache", on)
        compilation_cache.reset_cache()       # the setting is read again on the next compile
    enable(False)
    yield
    enable(True)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> str:
    """A small real-text corpus: this repository's own Python sources."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "bigmodels").rglob("*.py")))
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(text * 2)
    return str(path)
