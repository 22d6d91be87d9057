"""Real speech with transcripts from Debian's ``pocketsphinx-testdata``, for ASR word error rate.

Kept are the utterances whose words the package states: ``cards/`` and ``librivox/`` through
their transcription files, and the TIDIGITS recording ``tidigits/dhd.2934z.raw`` through the
TIDIGITS file-name convention (the digit string before the take letter, ``z`` = zero, ``o`` = oh;
the package's own ``tidigits.ctl``/``tidigits.lsn`` pairs follow it). The top-level ``goforward``,
``numbers`` and ``something`` recordings come without a transcript and are left out. Headerless
``.raw`` files are little-endian 16-bit 16 kHz mono PCM. Every clip is written as 16 kHz PCM16
WAV; all rows are in the test split. ``text`` (the normalised transcript) is the label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from omnifuse.data._common import child_rng
from omnifuse.data.builders import datasets
from omnifuse.data.schema import DatasetInfo, ManifestSchema, write_manifest
from omnifuse.errors import CorruptInputError, MissingDependencyError
from omnifuse.io.resample import resample
from omnifuse.progress import track
from omnifuse.speech.tts import SAMPLE_RATE, write_wav

DEFAULT_ROOT = Path("/usr/share/pocketsphinx/test/data")
TRANSCRIPT_FILES = ("cards/cards.transcription", "librivox/transcription")
TIDIGITS_RAW = "tidigits/*.raw"
DIGIT_CODES = {
    "z": "zero",
    "o": "oh",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
}
MANIFEST = "manifest.jsonl"
SCHEMA = ManifestSchema(
    modalities={"audio": "audio"},
    labels=["text"],
    extra=["source", "duration_s", "transcript_source"],
)
_UTTERANCE_ID = re.compile(r"\(([^()]*)\)\s*$")
_MARKERS = re.compile(r"</?s>|<sil>|\[[^\]]*\]|\+\+[^+]*\+\+")


@dataclass(frozen=True)
class Utterance:
    """One recording, its transcript, and where the transcript was found."""

    source: str
    name: str
    audio: Path
    text: str
    transcript_source: str

    @property
    def id(self) -> str:
        return f"{self.source}-{self.name}"

    @property
    def wav(self) -> str:
        """Where the clip goes, relative to the manifest."""
        return f"audio/{self.source}/{self.name}.wav"


def normalise_transcript(line: str) -> str:
    """Lower case, without the utterance id, sentence markers, fillers or extra spaces."""
    text = _MARKERS.sub(" ", _UTTERANCE_ID.sub(" ", line))
    return " ".join(text.lower().split())


def parse_transcription(path: Path) -> dict[str, str]:
    """Map utterance id -> normalised words for a Sphinx ``<s> words </s> (id)`` file."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        found = _UTTERANCE_ID.search(line)
        text = normalise_transcript(line)
        if found and text:
            out[found.group(1).strip()] = text
    return out


def tidigits_words(name: str) -> str | None:
    """Words of a TIDIGITS file name (``man.ah.2934za`` -> "two nine three four zero")."""
    code = name.rsplit(".", 1)[-1]
    if code and code[-1] in "ab":
        code = code[:-1]
    if not code or any(c not in DIGIT_CODES for c in code):
        return None
    return " ".join(DIGIT_CODES[c] for c in code)


def find_utterances(root: Path) -> list[Utterance]:
    """Every recording under ``root`` whose transcript the package provides, in a fixed order."""
    found: list[Utterance] = []
    for rel in TRANSCRIPT_FILES:
        transcript = root / rel
        if not transcript.is_file():
            continue
        for name, text in sorted(parse_transcription(transcript).items()):
            audio = transcript.parent / f"{name}.wav"
            if audio.is_file():
                found.append(Utterance(transcript.parent.name, name, audio, text, rel))
    for audio in sorted(root.glob(TIDIGITS_RAW)):
        words = tidigits_words(audio.stem)
        if words:
            found.append(Utterance("tidigits", audio.stem, audio, words, "tidigits file name"))
    return found


def read_pcm16(path: Path) -> tuple[np.ndarray, int]:
    """The 16-bit samples of a WAV file, or of a headerless 16 kHz little-endian ``.raw`` file."""
    if path.suffix == ".raw":
        return np.fromfile(path, dtype="<i2").astype(np.int16), SAMPLE_RATE
    try:
        samples, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise CorruptInputError(f"unreadable WAV: {exc}", source=path, modality="audio") from exc
    return samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1).astype(np.int16), rate


def write_16k(path: Path, samples: np.ndarray, rate: int) -> int:
    """Write the clip as 16 kHz PCM16 WAV, bit-exact when it already is; returns its length."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if rate == SAMPLE_RATE:
        sf.write(str(path), samples, SAMPLE_RATE, subtype="PCM_16")
        return len(samples)
    wave = resample(samples.astype(np.float32) / 32768.0, rate, SAMPLE_RATE)
    write_wav(path, wave)
    return len(wave)


def _row(utt: Utterance, length: int) -> dict[str, Any]:
    return {
        "id": utt.id,
        "split": "test",
        "audio": utt.wav,
        "text": utt.text,
        "source": utt.source,
        "duration_s": length / SAMPLE_RATE,
        "transcript_source": utt.transcript_source,
    }


@datasets.register("speech-test")
def build_speech_test(
    out: Path, *, seed: int = 0, size: int = 100, root: Path | None = None
) -> DatasetInfo:
    """Real utterances and transcripts of pocketsphinx-testdata; ``size`` caps the count."""
    out, root = Path(out), Path(root or DEFAULT_ROOT)
    utterances = find_utterances(root) if root.is_dir() else []
    if not utterances:
        raise MissingDependencyError(
            f"pocketsphinx test utterances ({root})", apt="pocketsphinx-testdata"
        )
    if 0 < size < len(utterances):
        keep = child_rng(seed).choice(len(utterances), size=size, replace=False)
        utterances = [utterances[i] for i in sorted(keep.tolist())]
    rows = []
    for utt in track(utterances, "speech-test"):
        samples, rate = read_pcm16(utt.audio)
        rows.append(_row(utt, write_16k(out / utt.wav, samples, rate)))
    write_manifest(out / MANIFEST, rows, SCHEMA)
    info = DatasetInfo(
        name="speech-test",
        seed=seed,
        size=len(rows),
        manifests={"asr": MANIFEST},
        description=__doc__.strip().splitlines()[0] if __doc__ else "",
        params={
            "requested_size": size,
            "sample_rate": SAMPLE_RATE,
            "sources": sorted({r["source"] for r in rows}),
        },
    )
    info.write(out)
    return info
