"""How something is said: pitch, loudness, pauses and speaking rate, measured with Praat.

Praat (Boersma & Weenink) runs in-process through ``parselmouth``:

- **pitch**: ``Sound.to_pitch`` (Praat's autocorrelation tracker, 10 ms steps, 75–500 Hz);
  a frame without a pitch is unvoiced. Pitch is reported in semitones re 100 Hz.
- **intensity**: ``Sound.to_intensity`` (10 ms steps, minimum pitch 50 Hz, mean subtracted), in
  dB re 2·10⁻⁵ (a full-scale sine is about 91 dB). Values are floored at 0 dB (digital silence
  reads −300 dB).
- **silence**: a frame is silent when its intensity is more than ``silence_db`` (25 dB) below
  the clip's 99th-percentile intensity, or below 30 dB (about −64 dBFS) whatever the clip's
  level. The *speech span* runs from the first to the last sounding frame; a *pause* is a run of
  silent frames inside it lasting at least ``min_pause_s`` (0.2 s).
- **syllable nuclei** (de Jong & Wempe 2009, "Praat script to detect syllable nuclei"):
  intensity peaks above the silence threshold that are followed by a dip of at least 2 dB before
  the next peak (or the clip's end) and where the pitch tracker finds voicing. The *speaking
  rate* is nuclei per second of the speech span (pauses included); the *articulation rate* is
  nuclei per second of the span without its pauses.

Clips shorter than :data:`MIN_SECONDS` are padded with silence so that Praat's windows fit;
what is measured still refers to the real length. A silent clip (no sounding or no voiced
frame) gives zeros for what it lacks — no pitch, no rate — never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnifuse.errors import ConfigError

SAMPLE_RATE = 16_000
TIME_STEP = 0.01
PITCH_FLOOR = 75.0
PITCH_CEILING = 500.0
INTENSITY_MIN_PITCH = 50.0
MIN_SECONDS = 0.15
"""Praat's intensity window needs 6.4 / 50 Hz = 0.128 s; shorter clips are padded with zeros."""
ABSOLUTE_SILENCE_DB = 30.0
MIN_DIP_DB = 2.0
REFERENCE_HZ = 100.0


@dataclass(frozen=True)
class ProsodySettings:
    """Thresholds of the analysis (see the module docstring)."""

    silence_db: float = 25.0
    min_pause_s: float = 0.2
    pitch_floor: float = PITCH_FLOOR
    pitch_ceiling: float = PITCH_CEILING

    def __post_init__(self) -> None:
        if not (self.silence_db > 0 and self.min_pause_s > 0):
            raise ConfigError("silence_db and min_pause_s must be positive")
        if not 0 < self.pitch_floor < self.pitch_ceiling:
            raise ConfigError(f"bad pitch range {self.pitch_floor}–{self.pitch_ceiling} Hz")


@dataclass(frozen=True)
class Prosody:
    """The frame tracks (10 ms steps from time 0) and the clip's measurements.

    ``pitch_st`` is NaN where unvoiced; ``nuclei`` holds the times (s) of syllable nuclei and
    ``pauses`` the (start, end) times of pauses. Every clip-level figure is finite.
    """

    duration_s: float
    times: np.ndarray
    pitch_st: np.ndarray
    intensity_db: np.ndarray
    sounding: np.ndarray
    nuclei: np.ndarray
    pauses: list[tuple[float, float]]
    span: tuple[float, float]
    peak_db: float

    @property
    def voiced(self) -> np.ndarray:
        return np.isfinite(self.pitch_st)

    @property
    def span_s(self) -> float:
        return max(0.0, self.span[1] - self.span[0])

    @property
    def pause_s(self) -> float:
        return float(sum(end - start for start, end in self.pauses))

    @property
    def speaking_rate(self) -> float:
        """Syllable nuclei per second of the speech span (0 for a silent clip)."""
        return len(self.nuclei) / self.span_s if self.span_s > 0 else 0.0

    @property
    def articulation_rate(self) -> float:
        """Syllable nuclei per second of the speech span without its pauses."""
        speaking = self.span_s - self.pause_s
        return len(self.nuclei) / speaking if speaking > 0 else 0.0

    @property
    def pause_ratio(self) -> float:
        """The share of the speech span spent in pauses (1 for a silent clip)."""
        return self.pause_s / self.span_s if self.span_s > 0 else 1.0

    @property
    def pauses_per_second(self) -> float:
        return len(self.pauses) / self.span_s if self.span_s > 0 else 0.0

    def _in_span(self) -> np.ndarray:
        return (self.times >= self.span[0]) & (self.times <= self.span[1])

    @property
    def voiced_fraction(self) -> float:
        """The share of the speech span's frames that are voiced."""
        inside = self._in_span()
        return float(self.voiced[inside].mean()) if inside.any() else 0.0

    def pitch_stats(self) -> tuple[float, float, float]:
        """Mean, standard deviation and 5–95 % range of the voiced pitch, in semitones re 100 Hz
        (zeros when nothing is voiced)."""
        voiced = self.pitch_st[self.voiced]
        if voiced.size == 0:
            return 0.0, 0.0, 0.0
        low, high = np.percentile(voiced, [5, 95])
        return float(voiced.mean()), float(voiced.std()), float(high - low)

    def intensity_stats(self) -> tuple[float, float]:
        """Mean and standard deviation of the sounding frames' intensity in dB (zeros if none)."""
        loud = self.intensity_db[self.sounding]
        return (float(loud.mean()), float(loud.std())) if loud.size else (0.0, 0.0)

    def describe(self) -> dict[str, float]:
        """The clip's measurements in plain units, for notes and reports."""
        mean, sd, spread = self.pitch_stats()
        level, level_sd = self.intensity_stats()
        return {
            "duration_s": self.duration_s,
            "pitch_mean_hz": REFERENCE_HZ * 2 ** (mean / 12) if self.voiced.any() else 0.0,
            "pitch_mean_st": mean,
            "pitch_sd_st": sd,
            "pitch_range_st": spread,
            "intensity_mean_db": level,
            "intensity_sd_db": level_sd,
            "speaking_rate": self.speaking_rate,
            "articulation_rate": self.articulation_rate,
            "pause_ratio": self.pause_ratio,
            "pauses_per_s": self.pauses_per_second,
            "voiced_fraction": self.voiced_fraction,
        }


def analyse(
    wave: np.ndarray, settings: ProsodySettings | None = None, sample_rate: int = SAMPLE_RATE
) -> Prosody:
    """Measure the prosody of a decoded mono waveform (finite float samples)."""
    import parselmouth

    settings = settings or ProsodySettings()
    duration = len(wave) / sample_rate
    padded = np.zeros(max(len(wave), int(np.ceil(MIN_SECONDS * sample_rate))), dtype=np.float64)
    padded[: len(wave)] = wave
    sound = parselmouth.Sound(padded, sampling_frequency=sample_rate)
    pitch = sound.to_pitch(
        time_step=TIME_STEP, pitch_floor=settings.pitch_floor, pitch_ceiling=settings.pitch_ceiling
    )
    intensity = sound.to_intensity(minimum_pitch=INTENSITY_MIN_PITCH, time_step=TIME_STEP)
    frames = max(1, round(duration / TIME_STEP))
    times = (np.arange(frames) + 0.5) * TIME_STEP
    hz = _nearest(pitch.xs(), pitch.selected_array["frequency"], times)
    with np.errstate(divide="ignore", invalid="ignore"):
        pitch_st = np.where(hz > 0, 12 * np.log2(hz / REFERENCE_HZ), np.nan)
    level_db = _nearest(intensity.xs(), np.maximum(intensity.values[0], 0.0), times)
    peak = float(np.percentile(level_db, 99))
    sounding = (level_db > peak - settings.silence_db) & (level_db > ABSOLUTE_SILENCE_DB)
    span = _span(times, sounding)
    pauses = _pauses(times, sounding, span, settings.min_pause_s)
    nuclei = _nuclei(times, level_db, sounding, np.isfinite(pitch_st))
    return Prosody(duration, times, pitch_st, level_db, sounding, nuclei, pauses, span, peak)


def _nearest(xs: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``values`` at the frame of ``xs`` nearest to each time."""
    index = np.clip(np.searchsorted(xs, times), 1, max(1, len(xs) - 1))
    left = np.clip(index - 1, 0, len(xs) - 1)
    right = np.clip(index, 0, len(xs) - 1)
    pick = np.where(np.abs(xs[left] - times) <= np.abs(xs[right] - times), left, right)
    return np.asarray(values)[pick]


def _span(times: np.ndarray, sounding: np.ndarray) -> tuple[float, float]:
    """First to last sounding frame (edges of the frames); (0, 0) when nothing sounds."""
    index = np.flatnonzero(sounding)
    if index.size == 0:
        return 0.0, 0.0
    return float(times[index[0]] - TIME_STEP / 2), float(times[index[-1]] + TIME_STEP / 2)


def _pauses(
    times: np.ndarray, sounding: np.ndarray, span: tuple[float, float], min_pause_s: float
) -> list[tuple[float, float]]:
    """Runs of silent frames inside the speech span lasting at least ``min_pause_s``."""
    inside = (times > span[0]) & (times < span[1])
    silent = inside & ~sounding
    edges = np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [
        (float(times[s] - TIME_STEP / 2), float(times[e - 1] + TIME_STEP / 2))
        for s, e in zip(starts, ends, strict=True)
        if (e - s) * TIME_STEP >= min_pause_s - 1e-9
    ]


def _nuclei(
    times: np.ndarray, level: np.ndarray, sounding: np.ndarray, voiced: np.ndarray
) -> np.ndarray:
    """Times of syllable nuclei: voiced, sounding intensity peaks followed by a ≥ 2 dB dip."""
    if level.size < 3:
        return np.zeros(0)
    inner = (level[1:-1] > level[:-2]) & (level[1:-1] >= level[2:])
    peaks = np.flatnonzero(inner) + 1
    peaks = peaks[sounding[peaks]]
    kept = []
    for n, peak in enumerate(peaks):
        stop = peaks[n + 1] if n + 1 < len(peaks) else len(level)
        if level[peak] - level[peak:stop].min() >= MIN_DIP_DB and voiced[peak]:
            kept.append(times[peak])
    return np.asarray(kept, dtype=np.float64)
