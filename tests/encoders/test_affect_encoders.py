"""The affect encoders: VADER sentiment features and Praat prosody features.

VADER's features are checked on sentences whose sentiment is plain, against VADER's own
``polarity_scores`` and its rules (negation, boosters, caps, "but"). Prosody is checked on
signals whose answer is known (a 200 Hz tone is one octave above 100 Hz; a tone with a gap has
one pause; a tone pulsed four times a second has four nuclei a second) and on espeak-ng speech
synthesised faster, higher, wider or louder.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from omnifuse.encoders import Encoder, create
from omnifuse.encoders.prosody import CLIP_FEATURES, FRAME_FEATURES, ProsodyEncoder
from omnifuse.encoders.sentiment import SENTENCE_FEATURES, WORD_FEATURES, read_sentiment
from omnifuse.errors import (
    ConfigError,
    CorruptInputError,
    EmptyInputError,
    InputTooLargeError,
    InvalidValueError,
    TextEncodingError,
)
from omnifuse.speech.prosody import analyse
from omnifuse.speech.tts import Voice, synthesize

RATE = 16_000
SENTENCE = "I went to the market this morning and bought some bread and apples."
PITCH, VOICED, INTENSITY = 0, 1, 3
MEAN_PITCH, PITCH_SD, MEAN_INTENSITY, SPEAKING_RATE, PAUSE_RATIO = 0, 1, 3, 6, 8
PAUSES_PER_S, VOICED_FRACTION = 9, 10


def tone(seconds: float, freq: float = 200.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def wav_bytes(wave: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def vader() -> Encoder:
    return create("vader")


@pytest.fixture(scope="module")
def prosody() -> ProsodyEncoder:
    encoder = create("prosody")
    assert isinstance(encoder, ProsodyEncoder)
    return encoder


def pooled(encoder: Encoder, raw: object) -> torch.Tensor:
    return encoder.encode([raw]).pooled[0]


# --- VADER -------------------------------------------------------------------------------


def test_vader_pooled_is_polarity_scores_and_signs_follow_the_words(vader: Encoder) -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    reference = SentimentIntensityAnalyzer()
    cases = {
        "What a wonderful day, I love this lovely place!": 1,
        "The service was terrible and the food was awful.": -1,
        "The train leaves at nine from platform four.": 0,
    }
    for text, sign in cases.items():
        features = pooled(vader, text)
        scores = reference.polarity_scores(text)
        expected = [scores[k] for k in ("neg", "neu", "pos", "compound")]
        torch.testing.assert_close(features[:4], torch.tensor(expected), atol=1e-6, rtol=0)
        compound = float(features[3])
        assert (compound > 0.5) if sign > 0 else (compound < -0.5) if sign < 0 else compound == 0
    assert vader.dim == len(WORD_FEATURES) == len(SENTENCE_FEATURES) == 8


def test_vader_tokens_are_words_with_their_rules(vader: Encoder) -> None:
    out = vader.encode(["The food was not good", "It was very good", "I love it but it is BAD"])
    assert out.mask.sum(dim=1).tolist() == [5, 4, 7]
    not_good = out.tokens[0, 4]
    assert not_good[0] > 0 and not_good[1] < 0 and not_good[2] == 1 and not_good[3] == 1
    assert out.pooled[0, 3] < 0  # negated "good" makes the sentence negative
    very_good = out.tokens[1, 3]
    assert very_good[4] == 1 and very_good[1] > very_good[0]  # boosted above its lexicon value
    but = out.tokens[2]
    assert but[1, 6] == -1 and but[6, 6] == 1 and but[3, 6] == 0  # "love" before, "BAD" after
    assert but[6, 5] == 1 and but[0, 5] == 0  # "BAD" is emphasised, "I" is not a rated word
    assert out.tokens[:, :, 7].max() == 1  # position runs to 1 on the last word


def test_vader_reads_negation_with_no() -> None:
    reading = read_sentiment("There were no problems")
    assert reading.words[3].negated and reading.words[3].valence > 0 > reading.words[3].lexicon


def test_vader_bad_text_raises_typed_errors(vader: Encoder) -> None:
    with pytest.raises(EmptyInputError):
        vader.preprocess("   ")
    with pytest.raises(TextEncodingError):
        vader.preprocess(b"\xff\xfe\xfa")
    with pytest.raises(InputTooLargeError):
        create("vader", max_chars=10).preprocess("a sentence much longer than ten characters")


# --- prosody -----------------------------------------------------------------------------


def test_prosody_of_a_tone_is_an_octave_above_100_hz(prosody: ProsodyEncoder) -> None:
    out = prosody.encode([(tone(1.0), RATE)])
    assert out.tokens.shape == (1, 10, len(FRAME_FEATURES)) and prosody.dim == len(CLIP_FEATURES)
    clip = out.pooled[0]
    assert clip[MEAN_PITCH] == pytest.approx(1.0, abs=0.01)  # 12 semitones / 12
    assert clip[PITCH_SD] < 0.01 and clip[VOICED_FRACTION] > 0.9
    inner = out.tokens[0, 1:-1]
    assert torch.allclose(inner[:, PITCH], torch.ones(8), atol=0.01)
    assert (inner[:, VOICED] == 1).all()


def test_prosody_finds_the_pause_between_two_tones() -> None:
    wave = np.concatenate([tone(0.6), np.zeros(RATE // 2, np.float32), tone(0.6)])
    measured = analyse(wave)
    assert len(measured.pauses) == 1
    start, end = measured.pauses[0]
    assert start == pytest.approx(0.6, abs=0.05) and end == pytest.approx(1.1, abs=0.05)
    # Praat's intensity window (3.2 / 50 Hz) smears each edge of the gap by a few tens of ms
    assert measured.pause_ratio == pytest.approx(0.5 / 1.7, abs=0.06)
    assert measured.span[1] - measured.span[0] == pytest.approx(1.7, abs=0.05)


def test_prosody_counts_intensity_pulses_as_syllable_nuclei() -> None:
    t = np.arange(3 * RATE) / RATE
    pulsed = tone(3.0) * (0.55 - 0.45 * np.cos(2 * math.pi * 4 * t)).astype(np.float32)
    assert analyse(pulsed).speaking_rate == pytest.approx(4.0, abs=0.5)


def test_prosody_of_silence_and_of_a_very_short_clip_is_finite(prosody: ProsodyEncoder) -> None:
    out = prosody.encode([(np.zeros(RATE, np.float32), RATE), (tone(0.03), RATE)])
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()
    silent = out.pooled[0]
    assert silent[MEAN_PITCH] == 0 and silent[SPEAKING_RATE] == 0 and silent[PAUSE_RATIO] == 1
    assert out.mask.sum(dim=1).tolist() == [10, 1]


def test_prosody_follows_rate_pitch_range_and_loudness_of_speech(prosody: ProsodyEncoder) -> None:
    def clip(voice: Voice, gain: float = 1.0) -> torch.Tensor:
        wave = synthesize(SENTENCE, voice) * gain
        return pooled(prosody, (wave, RATE))

    plain = clip(Voice(rate=160, pitch=50))
    assert clip(Voice(rate=240))[SPEAKING_RATE] > plain[SPEAKING_RATE] * 1.2
    assert clip(Voice(rate=110))[SPEAKING_RATE] < plain[SPEAKING_RATE] / 1.2
    assert clip(Voice(pitch=85))[MEAN_PITCH] > plain[MEAN_PITCH] + 2 / 12  # over 2 semitones
    assert clip(Voice(pitch=15))[MEAN_PITCH] < plain[MEAN_PITCH] - 2 / 12
    assert clip(Voice(pitch_range=180))[PITCH_SD] > plain[PITCH_SD] * 1.3
    louder = clip(Voice(rate=160, pitch=50), gain=0.25)
    level = (plain[MEAN_INTENSITY] - louder[MEAN_INTENSITY]) * 60
    assert level == pytest.approx(20 * math.log10(4), abs=0.5)  # 12 dB louder


def test_prosody_bad_audio_raises_typed_errors(prosody: ProsodyEncoder) -> None:
    with pytest.raises(EmptyInputError):
        prosody.preprocess((np.zeros(0, np.float32), RATE))
    with pytest.raises(InvalidValueError):
        prosody.preprocess((np.full(RATE, np.nan, np.float32), RATE))
    with pytest.raises(CorruptInputError):
        prosody.preprocess(wav_bytes(tone(0.5))[:30])
    with pytest.raises(InputTooLargeError):
        create("prosody", max_seconds=1.0).preprocess(wav_bytes(tone(2.0)))
    with pytest.raises(ConfigError):
        create("prosody", window_s=0.001)


def test_prosody_batched_equals_one_by_one(prosody: ProsodyEncoder) -> None:
    raws = [(tone(0.4, 150.0), RATE), wav_bytes(tone(1.3, 300.0, 0.1)), (np.zeros(800), RATE)]
    batch = prosody.encode(raws)
    for i, raw in enumerate(raws):
        one = prosody.encode([raw])
        real = int(one.mask[0].sum())
        assert torch.equal(batch.pooled[i], one.pooled[0])
        assert torch.equal(batch.tokens[i, :real], one.tokens[0, :real])
