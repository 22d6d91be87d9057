"""Request and response bodies (pydantic), in OpenAI's shapes where OpenAI has one.

Media fields take a reference string — a data URI, an allow-listed http(s) URL, or a path under
the server's allowed root — or an object with exactly one of ``data`` (base64 or a data URI),
``url`` and ``path``. Numbers must be finite (``NaN`` and infinities are refused with 422).
Unknown fields are ignored, as OpenAI-compatible servers do, so newer clients keep working.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$"
"""Model names: no slashes, no leading dot (a name never reaches the filesystem as a path)."""

ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=ID_PATTERN)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MediaRef(Strict):
    """Exactly one of ``data`` (base64 or data URI), ``url`` and ``path``."""

    data: str | None = None
    url: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MediaRef:
        given = [n for n in ("data", "url", "path") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of data, url, path (got {given or 'none'})")
        return self


MediaValue = str | MediaRef


# -- embeddings ---------------------------------------------------------------------------------


class EmbeddingPart(Strict):
    """One input with its type: ``{"type": "image", "data": "data:image/png;base64,..."}``."""

    type: Literal["text", "image", "audio"]
    text: str | None = None
    data: str | None = None
    url: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _content(self) -> EmbeddingPart:
        given = [n for n in ("text", "data", "url", "path") if getattr(self, n) is not None]
        wanted = ["text"] if self.type == "text" else ["data", "url", "path"]
        if len(given) != 1 or given[0] not in wanted:
            article = "an" if self.type in ("image", "audio") else "a"
            raise ValueError(
                f"{article} {self.type} input needs exactly one of {', '.join(wanted)} "
                f"(got {given or 'none'})"
            )
        return self


class EmbeddingsRequest(Body):
    """OpenAI's embeddings request; ``input`` may also hold image and audio parts.

    ``model`` is an encoder (``minilm``, ``effnet-lite0``, ``whisper-tiny-en``), the aligned
    model, or ``auto`` (per input, the aligned model when it reads that modality, else the
    modality's encoder).
    """

    model: ModelName = "auto"
    input: str | list[str | EmbeddingPart]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


# -- predict ------------------------------------------------------------------------------------

InlineValue = list[Any] | dict[str, Any]
"""A value held in the request itself: a series' numbers (a list, a list of rows, or
``{"values": ..., "rate": ...}``) or a table record (``{"age": 41, "smoker": "no"}``)."""

Sample = dict[Annotated[str, Field(min_length=1, max_length=100)], MediaValue | InlineValue]


class PredictRequest(Body):
    """A fusion model by name and one sample (or a list): column (or modality) → input.

    Text columns take the text itself; image, audio and video columns take a media reference;
    series columns take their numbers inline or a reference to an ``.npy``/``.npz``/``.csv``
    file; tabular columns take the record as an object. Columns left out count as missing
    modalities.
    """

    model: ModelName
    inputs: Sample | list[Sample]
    top_k: int = Field(default=5, ge=1, le=100)
    explain: bool = True


class LabelScore(BaseModel):
    label: str
    score: float


class PredictionOut(BaseModel):
    index: int
    label: str
    score: float
    top: list[LabelScore]
    present: list[str]
    weights: dict[str, float] | None = None
    contributions: dict[str, float] | None = None


class PredictResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    task: str
    data: list[PredictionOut]


# -- search -------------------------------------------------------------------------------------


Scalar = str | int | float | bool
Operator = Annotated[str, Field(pattern=r"^\$[a-z]{2,5}$")]
FilterValue = Scalar | list[Scalar] | dict[Operator, Scalar | list[Scalar]]
"""A value (equality), a list (membership) or operators: ``{"$gte": 2, "$lt": 5}``."""


class SearchQuery(Strict):
    """Exactly one of ``text``, ``image``, ``audio``."""

    text: str | None = None
    image: MediaValue | None = None
    audio: MediaValue | None = None

    @model_validator(mode="after")
    def _one_modality(self) -> SearchQuery:
        given = [n for n in ("text", "image", "audio") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of text, image, audio (got {given or 'none'})")
        return self

    @property
    def modality(self) -> str:
        return next(n for n in ("text", "image", "audio") if getattr(self, n) is not None)


class SearchRequest(Body):
    """Nearest indexed items to a query (text, or an image / audio reference)."""

    query: str | SearchQuery
    k: int = Field(default=10, ge=1)
    filter: dict[Annotated[str, Field(min_length=1, max_length=100)], FilterValue] | None = None
    model: ModelName = "auto"


class SearchHit(BaseModel):
    id: str
    score: float
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    modality: str
    data: list[SearchHit]


# -- chat ---------------------------------------------------------------------------------------


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ImageURL(Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(Strict):
    data: str
    format: Literal["wav", "mp3", "flac", "ogg", "webm", "m4a"] = "wav"


class AudioPart(Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


class VideoURL(Strict):
    url: str


class VideoPart(Strict):
    """An omnifuse extension: a video clip (data URI, allow-listed URL or allowed path)."""

    type: Literal["video_url"]
    video_url: VideoURL


ContentPart = Annotated[TextPart | ImagePart | AudioPart | VideoPart, Field(discriminator="type")]


class Message(Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(Body):
    include_usage: bool = False


class ChatRequest(Body):
    """OpenAI's chat completion request (the subset a local assistant can honour)."""

    model: ModelName
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)
    user: str | None = None


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"] = "stop"


class ToolUse(BaseModel):
    """One tool the assistant consulted and what it said (``ToolNote.to_dict``): ``name``,
    the finding as the LLM read it (``text``), the tool's ``confidence``, how good it is known
    to be (``quality``), what it cost (``seconds``) and the structured finding (``data``)."""

    name: str
    text: str
    confidence: float | None = None
    quality: str | None = None
    seconds: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)


class ChatExtras(BaseModel):
    """What the assistant perceived — the question it answered, the speech transcript, the
    perception context given to the LLM, the ``tools`` it consulted — and, once the reply
    ends, its short ``answer`` (the reply post-processed to what the question asks for, e.g.
    one word)."""

    question: str | None = None
    transcript: str | None = None
    context: str | None = None
    tools: list[ToolUse] = Field(default_factory=list)
    answer: str | None = None


class ChatUsage(BaseModel):
    """Tokens of the conversation sent to the LLM and of its reply, in the model's tokenizer."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: ChatUsage | None = None
    omnifuse: ChatExtras | None = None


# -- transcription, models, health --------------------------------------------------------------


class TranscriptionSegment(BaseModel):
    id: int
    start: float
    end: float
    text: str


class Transcription(BaseModel):
    text: str


class VerboseTranscription(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment]


class ModelCard(BaseModel):
    """OpenAI's model object, plus what omnifuse knows about it."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "omnifuse"
    kind: Literal["embedding", "fusion", "chat", "transcription"]
    modalities: list[str] = Field(default_factory=list)
    dim: int | None = None
    task: str | None = None
    classes: list[str] | None = None
    loaded: bool = False


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    loaded: list[str]
    models: int
    index: bool
    auth: bool
    queues: dict[str, int]
