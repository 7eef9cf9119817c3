"""The Fréchet distance between two sets of images, in the features of a trained
classifier (FID, Heusel et al. 2017, with a small digits CNN in place of Inception).

    d = |mu_r - mu_g|^2 + tr(C_r + C_g - 2 (C_r C_g)^(1/2))

The moments come from sums over eval batches (sum of features, sum of outer
products, count), so eval can run in batches on any mesh and add them up.

`FeatureNet` wraps a trained classifier (e.g. experiments/digits_cnn.py, loaded by
bigmodels.tasks.gan) whose model returns features with `features=True`. `pixel_map`
maps images from the caller's pixel space into the classifier's input space: both
spaces are affine maps of the raw pixels (the caller's and the classifier's
`Standardizer`), so the map is exact. Pure math: nothing here reads files.
"""

import dataclasses

import numpy as np

from bigmodels.errors import BadInput


def moments(feature_sum, outer_sum, count: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, unbiased covariance) from sum(f), sum(f f^T) and the number of rows."""
    if count < 2:
        raise ValueError(f"need at least 2 feature rows, got {count}")
    mean = np.asarray(feature_sum, np.float64) / count
    cov = (np.asarray(outer_sum, np.float64) - count * np.outer(mean, mean)) / (count - 1)
    return mean, cov


def _psd_sqrt(matrix):
    w, v = np.linalg.eigh((matrix + matrix.T) / 2)
    return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


def frechet_distance(mean1, cov1, mean2, cov2) -> float:
    """The Fréchet distance between N(mean1, cov1) and N(mean2, cov2).

    tr((C1 C2)^(1/2)) is computed as tr((S C2 S)^(1/2)) with S = C1^(1/2): the same
    eigenvalues, but of a symmetric PSD matrix, so singular covariances (fewer rows
    than features) need no offset and give no complex round-off."""
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    s = _psd_sqrt(cov1)
    eigenvalues = np.linalg.eigvalsh(s @ cov2 @ s)
    trace_root = np.sqrt(np.maximum(eigenvalues, 0.0)).sum()
    diff = np.asarray(mean1, np.float64) - np.asarray(mean2, np.float64)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_root)


def feature_sums(features_BxF, weights_B) -> tuple:
    """(weighted sum of features, weighted sum of outer products, total weight)."""
    f = features_BxF * weights_B[:, None]
    return f.sum(0), f.T @ features_BxF, weights_B.sum()


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    """A trained classifier's feature function for images in a given pixel space."""
    model: object
    params: dict
    scale: float          # classifier input = image * scale + shift
    shift: float

    def __call__(self, images):
        x = images * self.scale + self.shift
        return self.model.apply({"params": self.params}, x, features=True)


def pixel_map(classifier, pixels, key: str = "task.fid_classifier") -> tuple[float, float]:
    """(scale, shift) of FeatureNet: `classifier` is the Standardizer the classifier was
    trained with, `pixels` the one that put the caller's images into their space."""
    for name, s in (("the classifier's", classifier), ("this run's", pixels)):
        if s.log1p_columns or np.size(s.mean) != 1:
            raise BadInput(f"{key}: {name} pixels need one global scale (data.standardize "
                           f"global, unit or none), without log1p")
    # raw = image * pixel_std + pixel_mean; input = (raw - c_mean) / c_std
    scale = float(pixels.std[0] / classifier.std[0])
    shift = float((pixels.mean[0] - classifier.mean[0]) / classifier.std[0])
    return scale, shift
