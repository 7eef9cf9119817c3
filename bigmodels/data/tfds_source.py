"""Opening a named TFDS dataset without TensorFlow: the builder in array_record,
prepared once under `data.tfds_dir` (downloaded on first use), and its splits as
random-access data sources. Every failure (unknown name, offline, a bad split or
feature key, a missing optional dependency) is one BadInput line."""

import tensorflow_datasets as tfds

from bigmodels.data.text_files import default_data_dir
from bigmodels.errors import BadInput


def _bad(d, e: Exception) -> BadInput:
    first_line = str(e).splitlines()[0] if str(e) else ""
    return BadInput(f"data.name={d.name!r}: {type(e).__name__}: {first_line}")


def prepared_builder(d):
    """The TFDS builder of `d.name`, prepared."""
    try:
        builder = tfds.builder(d.name, data_dir=d.tfds_dir or default_data_dir(),
                               file_format="array_record")
        builder.download_and_prepare()
    except Exception as e:
        raise _bad(d, e) from None
    return builder


def split_sources(d, feature_keys=()):
    """(builder, train source, eval source) of `d.train_split` and `d.eval_split`,
    after checking that every one of `feature_keys` is a feature of the dataset."""
    builder = prepared_builder(d)
    try:
        sources = builder.as_data_source(d.train_split), builder.as_data_source(d.eval_split)
        for key in feature_keys:
            builder.info.features[key]
    except Exception as e:
        raise _bad(d, e) from None
    return (builder,) + sources
