"""Prediction with any trained run or export, from Python or the command line:

    from bigmodels import predict
    predictor = predict.load("runs/digits_cnn")
    predictor.predict(["seven.png", "two.png"])   # [{"input", "label", "probabilities"}]

`load(workdir)` picks the predictor of the run's family (predict/families.py); its
`predict(inputs, **options)` returns the dicts that `python -m bigmodels.predict`
writes as JSON lines. Inputs are what is natural for the family: strings for language
models, seq2seq models and text classifiers; paths, PIL images or arrays for image
models; CSV paths, dict rows or 2-D arrays for tabular models; WAV paths or (samples,
rate) pairs for speech; a number of images for a GAN.
"""

from bigmodels.predict.base import Predictor
from bigmodels.predict.batching import DEFAULT_BATCH_SIZE, Batcher
from bigmodels.predict.loading import Loaded, load_model


def load(workdir: str, step: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
         devices=None) -> Predictor:
    """The predictor of the run or export at `workdir` (its latest step, or `step`),
    predicting `batch_size` inputs at a time over `devices` (default: all local ones)."""
    from bigmodels.predict import families
    loaded = load_model(workdir, step)
    return families.build(loaded, Batcher(batch_size, devices))


__all__ = ["Batcher", "Loaded", "Predictor", "load", "load_model"]
