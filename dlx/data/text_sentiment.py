"""A generated sentiment data set with a known answer: one cue word, maybe negated, decides the label.

Each sentence says something about a film ("honestly the plot was not very good in the second
half"): its label is the polarity of its one cue word (good, awful, ...), flipped when a negation
(not, never, hardly) comes before it. Openers, subjects, verbs, intensifiers and trailing phrases
are distractors drawn independently of the label. The rationale (the cue word and its negation)
ships as a word mask in `Split.extras["rationale"]` (N, MAX_WORDS), so token attributions can be
scored on whether they point at it. Words are separated by single spaces, with no punctuation.
"""
from __future__ import annotations

import numpy as np

from dlx.data.registry import DataBundle, DatasetMeta, register_dataset, split_texts

CLASSES = ("negative", "positive")
PER_CLASS = 1500
MAX_WORDS = 16
NEGATION_RATE = 0.4
POSITIVE = ("good", "great", "excellent", "wonderful", "enjoyable", "superb", "lovely", "brilliant")
NEGATIVE = ("bad", "awful", "terrible", "boring", "poor", "dreadful", "horrible", "dull")
NEGATIONS = ("not", "never", "hardly")
OPENERS = ("", "", "honestly", "overall", "i think", "to be fair", "in my view", "frankly")
SUBJECTS = ("the movie", "this film", "the plot", "the acting", "the soundtrack", "the ending",
            "the story", "the cast", "the dialogue", "the camera work", "the second act", "the script")
VERBS = ("was", "is", "seemed", "felt", "looked")
INTENSIFIERS = ("", "", "really", "very", "quite", "truly", "rather")
TRAILERS = ("", "", "in the second half", "for a long film", "according to my friend",
            "on a rainy tuesday", "by most accounts", "at the cinema downtown", "for the price",
            "with the lights off", "from start to finish", "on the small screen")


def generate(seed: int, per_class: int = PER_CLASS) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sentences, labels (0 negative, 1 positive) and rationale masks (N, MAX_WORDS) over words."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    rng.shuffle(labels)
    texts: list[str] = []
    rationale = np.zeros((len(labels), MAX_WORDS), dtype=bool)
    for i, label in enumerate(labels):
        negated = rng.random() < NEGATION_RATE
        cues = POSITIVE if bool(label) != negated else NEGATIVE
        words = [*_pick(rng, OPENERS), *_pick(rng, SUBJECTS), *_pick(rng, VERBS)]
        if negated:
            rationale[i, len(words)] = True
            words.append(_pick(rng, NEGATIONS)[0])
        words += _pick(rng, INTENSIFIERS)
        rationale[i, len(words)] = True
        words.append(_pick(rng, cues)[0])
        words += _pick(rng, TRAILERS)
        texts.append(" ".join(words))
    return texts, labels, rationale


def _pick(rng: np.random.Generator, choices: tuple[str, ...]) -> list[str]:
    return choices[rng.integers(len(choices))].split()


@register_dataset("sentiment", "text",
                  "generated: film-review sentences whose one cue word (maybe negated: 'not good') "
                  "decides the label; ships its rationale words (2 classes, 3,000 sentences)",
                  shape=(MAX_WORDS,), classes=len(CLASSES), rows=PER_CLASS * len(CLASSES))
def sentiment(seed: int, val_fraction: float, test_fraction: float, download: bool = False) -> DataBundle:
    texts, labels, rationale = generate(seed)
    meta = DatasetMeta("sentiment", "text", CLASSES, (MAX_WORDS,),
                       description="known-answer sentiment sentences, with rationale words")
    return split_texts(texts, labels, meta, seed, val_fraction, test_fraction, extras={"rationale": rationale})
