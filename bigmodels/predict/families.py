"""Which predictor a run gets, from its task and the kind of its data."""

from bigmodels.errors import BadInput
from bigmodels.predict.image_inputs import image_format
from bigmodels.registry import load

# Predictors by name, imported only when used.
PREDICTORS = {
    "language": "bigmodels.predict.language:LanguageModel",
    "seq2seq": "bigmodels.predict.seq2seq:Seq2SeqPredictor",
    "text_classifier": "bigmodels.predict.text_classes:TextClassifier",
    "image_classifier": "bigmodels.predict.images:ImageClassifier",
    "tabular": "bigmodels.predict.tabular:TabularPredictor",
    "speech": "bigmodels.predict.speech:Transcriber",
    "reconstruction": "bigmodels.predict.generative:Reconstructor",
    "gan": "bigmodels.predict.generative:Sampler",
}
BY_TASK = {"causal_lm": "language", "seq2seq": "seq2seq", "ctc": "speech",
           "autoencode": "reconstruction", "vae": "reconstruction", "gan": "gan"}
TEXT_KINDS = ("text_classes", "tfds_text_classes")
SCORED_TASKS = ("classify", "binary_classify", "regress")


def family(config) -> str:
    """The name of the predictor for a run's config (a key of PREDICTORS)."""
    task = config.get("task")
    if task in BY_TASK:
        return BY_TASK[task]
    if task in SCORED_TASKS:
        if config.data.kind in TEXT_KINDS:
            return "text_classifier"
        if image_format(config) is not None:
            return "image_classifier"
        if config.data.kind == "toy_datasets":
            return "tabular"
    raise BadInput(f"--workdir: bigmodels.predict has no predictor for task={task} on "
                   f"data.kind={config.data.get('kind')} (model {config.model.get('name')})")


def build(loaded, batcher):
    return load(PREDICTORS[family(loaded.config)])(loaded, batcher)
