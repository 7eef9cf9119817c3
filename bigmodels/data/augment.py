"""Image augmentations as grain transforms, drawn from the seed and each example's
position in the stream (so train batch i stays a pure function of (seed, i))."""

import grain
import numpy as np


def shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """H x W x C moved down dy and right dx pixels (negative: up/left); what moves in
    is 0, the blank background of the raw digits."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


class RandomShift(grain.transforms.RandomMap):
    """Shifts an example's raw image by up to `max_shift` pixels each way."""

    def __init__(self, max_shift: int = 1):
        self.max_shift = max_shift

    def random_map(self, element, rng: np.random.Generator):
        dy, dx = rng.integers(-self.max_shift, self.max_shift + 1, size=2)
        return {**element, "image": shift_image(element["image"], int(dy), int(dx))}


class RandomFlip(grain.transforms.RandomMap):
    """Mirrors an example's image left-right with probability 1/2."""

    def random_map(self, element, rng: np.random.Generator):
        if rng.random() < 0.5:
            return {**element, "image": element["image"][:, ::-1]}
        return element


def image_augmentations(side: int, shift: bool, flip: bool) -> list:
    """The train-time transforms: a random shift of up to side/8 pixels (at least 1; a
    "random crop" of the zero-padded image) and, for natural images only, a random
    horizontal flip (a flipped digit is another symbol)."""
    out = [RandomShift(max(1, side // 8))] if shift else []
    return out + ([RandomFlip()] if flip else [])
