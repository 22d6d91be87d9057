"""The web page in a real browser: Debian's Chromium, headless, driven by Playwright, against the
real server (uvicorn on loopback) with real components: Gemma-3-270M through llama.cpp for chat,
Whisper for speech, a fusion model trained on the omnifuse world for contributions and a FAISS
index of the world's captions for nearest items.

Each test saves a screenshot to ``test-artifacts/browser-<name>.png``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web_fixtures import (
    CHROMIUM,
    FUSION_MODEL,
    SLOW_LLM,
    SlowLLM,
    launch_chromium,
    live_server,
    registered_llm,
    save_screenshot,
    web_app,
    web_assets,
)

from omnifuse.llm import DEFAULT_LLM
from omnifuse.serve import ServeConfig, ServeLimits

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

ANSWER_TOKENS = 24
TIMEOUT_MS = 120_000


@dataclass(frozen=True)
class Site:
    url: str
    world: Path


def serve_site(tmp_path_factory: pytest.TempPathFactory, llm: str = DEFAULT_LLM) -> Iterator[Site]:
    """The real server with a fusion model, a caption index and the chat model ``llm``."""
    assets = web_assets(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("web"))
    config = ServeConfig(
        llm=llm,
        models_dir=assets.models,
        index_dir=assets.index,
        limits=ServeLimits(max_tokens=64, request_timeout_s=120.0),
    )
    with live_server(web_app(config)) as url:
        yield Site(url=url, world=assets.world)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The server with the default chat model."""
    yield from serve_site(tmp_path_factory)


@pytest.fixture(scope="module")
def slow_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The server chatting through :class:`SlowLLM`."""
    with registered_llm(SLOW_LLM, SlowLLM):
        yield from serve_site(tmp_path_factory, llm=SLOW_LLM)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@contextmanager
def opened(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh page on ``site`` once the server reports ok; no uncaught page error allowed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(site.url + "/")
    expect(page.get_by_role("status").filter(has_text="Server ok")).to_be_visible()
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    with opened(browser, site) as page:
        yield page


@pytest.fixture
def slow_page(browser: Any, slow_site: Site) -> Iterator[Any]:
    with opened(browser, slow_site) as page:
        yield page


def first_vqa_row(world: Path) -> dict[str, Any]:
    return json.loads((world / "vqa.jsonl").read_text().splitlines()[0])


def open_settings(page: Any) -> None:
    if page.locator("details.settings").get_attribute("open") is None:
        page.get_by_text("Settings", exact=True).click()


def set_answer_tokens(page: Any, tokens: int) -> None:
    open_settings(page)
    page.get_by_label("Maximum answer tokens").fill(str(tokens))


def wait_for_answer(page: Any) -> str:
    answer = page.get_by_label("Model answer")
    expect(answer).not_to_be_empty(timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Stop")).to_be_disabled(timeout=TIMEOUT_MS)
    return str(answer.text_content())


def test_page_answers_a_question_about_an_uploaded_image(
    page: Any, site: Site, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    row = first_vqa_row(site.world)
    question = "What shapes are in this image?"
    expect(page.get_by_label("Chat model")).to_have_value("llama-cpp")
    expect(page.get_by_label("Fusion model (contributions)")).to_have_value(FUSION_MODEL)
    set_answer_tokens(page, ANSWER_TOKENS)

    page.get_by_label("Image").set_input_files(str(site.world / row["image"]))
    expect(page.get_by_alt_text("Preview of the attached image")).to_be_visible()
    page.get_by_role("textbox", name="Question").fill(question)
    page.get_by_role("button", name="Ask").click()
    answer = wait_for_answer(page)

    assert answer.strip() and answer != "(the model returned an empty answer)"
    expect(page.get_by_role("alert")).to_be_hidden()
    perceived = page.get_by_label("What the model perceived")
    expect(perceived).to_contain_text(question)

    chart = page.get_by_role("img", name="Modality contributions")
    expect(chart.locator("rect")).to_have_count(2, timeout=TIMEOUT_MS)
    labels = [str(r.get_attribute("aria-label")) for r in chart.locator("rect").all()]
    bars = sorted(label.split()[0] for label in labels)
    assert bars == ["image", "question"]
    expect(page.locator("#prediction")).to_contain_text("Prediction: ")

    nearest = page.get_by_role("list", name="Nearest indexed items").locator("li")
    expect(nearest).to_have_count(5, timeout=TIMEOUT_MS)
    expect(nearest.first.locator("img")).to_be_visible()
    expect(page.locator("#neighbours-by")).to_have_text("Searched by text.")
    scores = [float(t) for t in nearest.locator(".score").all_text_contents()]
    assert scores == sorted(scores, reverse=True)

    used = page.get_by_role("list", name="What I used").locator("li")
    expect(used.first).to_be_visible()
    shown = [str(name) for name in used.locator(".tool-name").all_text_contents()]
    expect(used.first.locator(".meta")).to_contain_text(" s")
    summary = page.get_by_text("What I used", exact=True)
    summary.focus()
    page.keyboard.press("Enter")  # the list folds away from the keyboard ...
    expect(used.first).to_be_hidden()
    page.keyboard.press("Enter")  # ... and back
    expect(used.first).to_be_visible()

    save_screenshot(page, "image-question", tmp_path, request)
    reply = streamed_answer_from_api(page, site, row["image"], question)
    assert answer == reply["choices"][0]["message"]["content"]
    assert shown == [tool["name"] for tool in reply["omnifuse"]["tools"]]
    assert "image" in shown  # seeing the image is the first thing the assistant used


def streamed_answer_from_api(page: Any, site: Site, image: str, question: str) -> Any:
    """The same request the page sent, through the API directly (greedy: the same reply)."""
    import base64

    import httpx

    data = base64.b64encode((site.world / image).read_bytes()).decode("ascii")
    body = {
        "model": "llama-cpp",
        "max_tokens": ANSWER_TOKENS,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": question},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
                ],
            }
        ],
    }
    response = httpx.post(site.url + "/v1/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    return response.json()


def test_page_shows_the_api_error_for_a_corrupt_image(
    page: Any, site: Site, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    row = first_vqa_row(site.world)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((site.world / row["image"]).read_bytes()[:200])
    page.get_by_label("Image").set_input_files(str(truncated))
    page.get_by_role("textbox", name="Question").fill("What is in this image?")
    page.get_by_role("button", name="Ask").click()

    alert = page.get_by_role("alert")
    expect(alert).to_be_visible(timeout=TIMEOUT_MS)
    expect(alert).to_contain_text("400")
    expect(alert).to_contain_text("image")
    expect(page.get_by_label("Model answer")).to_be_empty()
    save_screenshot(page, "corrupt-image", tmp_path, request)


def test_page_answers_a_spoken_question_from_an_audio_file(
    page: Any, site: Site, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    row = first_vqa_row(site.world)
    set_answer_tokens(page, 8)
    page.get_by_label("Image").set_input_files(str(site.world / row["image"]))
    page.get_by_label("Audio", exact=True).set_input_files(str(site.world / row["question_audio"]))
    expect(page.get_by_label("Attached audio")).to_be_visible()
    page.get_by_role("button", name="Ask").click()
    wait_for_answer(page)

    expect(page.get_by_role("alert")).to_be_hidden()
    perceived = page.get_by_label("What the model perceived")
    expect(perceived).to_contain_text("transcript")
    transcript = transcript_shown(page)
    assert len(shared_words(row["question"], transcript)) >= len(row["question"].split()) - 1, (
        row["question"],
        transcript,
    )
    save_screenshot(page, "spoken-question", tmp_path, request)


def test_record_button_says_when_the_microphone_is_refused(page: Any) -> None:
    page.get_by_role("button", name="Record question").click()
    status = page.locator("#record-status")
    expect(status).to_contain_text("Microphone access was refused")
    expect(page.get_by_role("button", name="Record question")).to_have_attribute(
        "aria-pressed", "false"
    )


@pytest.fixture
def microphone_page(playwright: Any, site: Site) -> Iterator[Any]:
    """A page in a Chromium whose fake microphone plays the first world question once."""
    wav = site.world / first_vqa_row(site.world)["question_audio"]
    browser = launch_chromium(
        playwright,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
    )
    try:
        page = browser.new_context(permissions=["microphone"]).new_page()
        page.goto(site.url + "/")
        yield page
    finally:
        browser.close()


def transcript_shown(page: Any) -> str:
    perceived = page.get_by_label("What the model perceived")
    return str(perceived.locator("dt:text-is('transcript') + dd").text_content() or "")


def shared_words(question: str, transcript: str) -> set[str]:
    spoken = set(question.lower().rstrip("?").split())
    heard = set(transcript.lower().replace("?", "").replace(",", "").replace(".", "").split())
    return spoken & heard


def test_recorded_question_becomes_a_wav_attachment(
    microphone_page: Any, site: Site, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The page records the fake microphone (WebM/Opus in Chromium), converts it to 16 kHz WAV
    for the API, and the server transcribes the question from it."""
    page = microphone_page
    question = first_vqa_row(site.world)["question"]
    set_answer_tokens(page, 8)
    page.get_by_role("button", name="Record question").click()
    stop = page.get_by_role("button", name="Stop recording")
    expect(stop).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(3000)
    stop.click()
    player = page.get_by_label("Attached audio")
    expect(player).to_be_visible(timeout=TIMEOUT_MS)
    assert str(player.get_attribute("src")).startswith("blob:")
    expect(page.locator("#record-status")).to_have_text("Recorded.")

    page.get_by_role("button", name="Ask").click()
    wait_for_answer(page)
    expect(page.get_by_role("alert")).to_be_hidden()
    transcript = transcript_shown(page)
    assert len(shared_words(question, transcript)) >= len(question.split()) // 2, transcript

    chart = page.get_by_role("img", name="Modality contributions")
    expect(chart.locator("rect")).to_have_count(1, timeout=TIMEOUT_MS)
    assert str(chart.locator("rect").get_attribute("aria-label")).startswith("question ")
    expect(page.locator("#neighbours-by")).to_have_text("Searched by text.", timeout=TIMEOUT_MS)
    save_screenshot(page, "recorded-question", tmp_path, request)


def test_api_key_is_kept_in_the_browser_and_sent(browser: Any) -> None:
    key = "page-test-key-0123"
    with live_server(web_app(ServeConfig(api_keys=(key,)))) as url:
        context = browser.new_context()
        page = context.new_page()
        page.goto(url + "/")
        status = page.locator("#server-status")
        expect(status).to_contain_text("models unavailable: 401")
        expect(page.get_by_label("Chat model").locator("option")).to_have_count(0)

        open_settings(page)
        page.get_by_label("API key").fill(key)
        page.get_by_label("API key").press("Tab")
        expect(status).not_to_contain_text("unavailable")
        expect(page.get_by_label("Chat model")).to_have_value("llama-cpp")

        page.reload()
        expect(page.get_by_label("API key")).to_have_value(key)
        expect(page.get_by_label("Chat model")).to_have_value("llama-cpp")
        context.close()


def test_stop_ends_a_streaming_answer_and_the_next_question_is_answered(slow_page: Any) -> None:
    page = slow_page
    expect(page.get_by_label("Chat model")).to_have_value(SLOW_LLM)
    set_answer_tokens(page, 64)
    question = page.get_by_role("textbox", name="Question")
    question.fill("Tell me a long story about a red circle and a blue square.")
    page.get_by_role("button", name="Ask").click()
    answer = page.get_by_label("Model answer")
    expect(answer).not_to_be_empty(timeout=TIMEOUT_MS)
    stop = page.get_by_role("button", name="Stop")
    assert stop.is_enabled(), "the answer ended before Stop could be clicked"
    stop.click()
    expect(page.get_by_role("button", name="Ask")).to_be_enabled()
    expect(page.get_by_role("alert")).to_be_hidden()
    partial = str(answer.text_content())
    page.wait_for_timeout(1000)
    assert answer.text_content() == partial

    set_answer_tokens(page, 4)
    question.fill("Name a colour.")
    question.press("Control+Enter")
    expect(answer).not_to_have_text(partial, timeout=TIMEOUT_MS)
    assert wait_for_answer(page).strip()
