"""Speech recognition with CTC on spoken digits synthesised offline by espeak-ng.

Utterances are 1 to 4 digits ("three seven one") in several voices, speeds and
pitches, as 40 log-mel bins every 10 ms. A conv front end (2x fewer frames) and a
BiLSTM predict characters; eval decodes greedily and reports eval/cer and eval/wer on
held-out utterances: texts that never occur in training, spoken by voices that
training never hears. Needs espeak-ng (apt-get install espeak-ng); the synthesised
dataset is cached, so only the first run synthesises.

    python -m bigmodels.main --config=experiments/speech_ctc.py --workdir=runs/speech_ctc

A Transformer encoder instead of the BiLSTM: `--config.model.encoder=transformer`.
Real speech, online (TFDS downloads and prepares speech_commands once, 2.4 GB):
`--config=experiments/speech_ctc.py:speech_commands`.
"""

from bigmodels.config import base_config, check_variant, tiny_run
from bigmodels.data.espeak import espeak_data_config
from bigmodels.data.speech_tfds import tfds_speech_data_config
from bigmodels.models.speech import speech_config

# espeak-ng voices: accents, with +variant for other speakers (espeak-ng --voices=variant).
ACCENTS = ("en-us", "en-gb", "en-029", "en-gb-x-rp")
TRAIN_VARIANTS = ("", "+m3", "+f2", "+f4", "+m7", "+klatt")
EVAL_VOICES = ("en-gb-scotland", "en-us+f3", "en-gb+m5")


VARIANTS = ("tiny", "speech_commands")  # speech_commands: online, TFDS


def get_config(arg: str = ""):
    check_variant(arg, VARIANTS)
    c = base_config(task="ctc", total_steps=600, batch_size=32, log_every=50, eval_every=200,
                    ckpt_every=200)
    c.model = speech_config(conv_strides=(2, 1), conv_dim=128, encoder="lstm", hidden_dim=128,
                            num_layers=2, dropout=0.1)
    c.optim.update(name="adamw", lr=2e-3, schedule="warmup_cosine", warmup_steps=50,
                   min_lr=1e-4, clip_norm=1.0, weight_decay=0.01)
    c.data = espeak_data_config(
        voices=",".join(a + v for a in ACCENTS for v in TRAIN_VARIANTS),
        eval_voices=",".join(EVAL_VOICES), num_train=3000, num_eval=256, eval_batches=8,
        max_frames=192)             # the longest of these utterances has 182 frames
    if arg == "speech_commands":     # one word per 1 s clip: yes, no, up, down, ...
        c.data = tfds_speech_data_config(name="speech_commands")
    if arg == "tiny":
        tiny_run(c)
        c.data.update(num_train=24, num_eval=8, eval_batches=1, max_words=2)
        c.model.update(conv_dim=16, hidden_dim=16, num_layers=1)
    return c
