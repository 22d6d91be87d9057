"""The page's tabs in a real browser — Debian's Chromium, headless, driven by Playwright — against
the real server on loopback: the world's caption index whose items name their pictures, the
fusion model, Gemma-3-270M through llama.cpp for chat, espeak-ng for spoken replies, and an
experiments folder holding a real sweep and tune study.

One test per tab (Ask: its keyboard), each saving ``test-artifacts/browser-tab-<name>.png``.
"""

from __future__ import annotations

import base64
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tabs_kit import SWEEP_ID, SWEEP_STRATEGIES, TUNE_ID, experiments_folder, picture_index
from web_fixtures import (
    CHROMIUM,
    launch_chromium,
    live_server,
    save_screenshot,
    web_app,
    web_assets,
)

from omnifuse.serve import ServeConfig, ServeLimits

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

TIMEOUT_MS = 120_000
BLOB = re.compile(r"^blob:")
RESULTS = 6


@dataclass(frozen=True)
class Site:
    url: str
    world: Path
    experiments: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    basetemp = tmp_path_factory.getbasetemp()
    assets = web_assets(basetemp, tmp_path_factory.mktemp("tabs"))
    index = picture_index(basetemp, assets.world, tmp_path_factory.mktemp("tabs") / "index")
    experiments = experiments_folder(basetemp)
    config = ServeConfig(
        models_dir=assets.models,
        index_dir=index,
        allowed_root=assets.world,
        experiments_dir=experiments,
        limits=ServeLimits(max_tokens=64, request_timeout_s=120.0),
    )
    with live_server(web_app(config)) as url:
        yield Site(url=url, world=assets.world, experiments=experiments)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as driver:
        chromium = launch_chromium(driver)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh page on the site once the server reports ok; no uncaught page error allowed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(site.url + "/")
    expect(page.get_by_role("status").filter(has_text="Server ok")).to_be_visible()
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def tab(page: Any, name: str) -> Any:
    return page.get_by_role("tab", name=name)


def panel(page: Any, name: str) -> Any:
    return page.get_by_role("tabpanel", name=name)


def open_tab(page: Any, name: str) -> Any:
    tab(page, name).click()
    expect(panel(page, name)).to_be_visible()
    return panel(page, name)


def scene_rows(world: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (world / "scenes.jsonl").read_text().splitlines()]


def test_tabs_follow_the_keyboard(page: Any, tmp_path: Path, request: Any) -> None:
    names = ["Ask", "Search", "Chat", "Experiments"]
    expect(tab(page, "Ask")).to_have_attribute("aria-selected", "true")
    tab(page, "Ask").focus()
    for name in [*names[1:], "Ask"]:  # right arrow walks along and wraps around
        page.keyboard.press("ArrowRight")
        expect(tab(page, name)).to_be_focused()
        expect(tab(page, name)).to_have_attribute("aria-selected", "true")
        expect(panel(page, name)).to_be_visible()
        assert page.evaluate("location.hash") == f"#{name.lower()}"
    page.keyboard.press("ArrowLeft")
    expect(tab(page, "Experiments")).to_be_focused()
    page.keyboard.press("Home")
    expect(tab(page, "Ask")).to_be_focused()
    page.keyboard.press("End")
    expect(tab(page, "Experiments")).to_be_focused()
    for name in names[:-1]:
        expect(panel(page, name)).to_be_hidden()
    assert [page.get_by_role("tab").nth(i).get_attribute("tabindex") for i in range(4)] == [
        "-1",
        "-1",
        "-1",
        "0",
    ]  # one tab stop for the whole list
    page.keyboard.press("Home")
    page.keyboard.press("Tab")  # from the tab list into the settings, then the open panel
    expect(page.get_by_text("Settings", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(panel(page, "Ask")).to_be_focused()
    page.reload()
    expect(tab(page, "Ask")).to_have_attribute("aria-selected", "true")
    page.goto(page.url.split("#")[0] + "#chat")
    expect(panel(page, "Chat")).to_be_visible()
    open_tab(page, "Ask")
    expect(panel(page, "Ask").get_by_role("button", name="Ask")).to_be_visible()
    save_screenshot(page, "tab-ask", tmp_path, request)


def test_search_tab_shows_a_grid_of_pictures_and_filters_it(
    page: Any, site: Site, tmp_path: Path, request: Any
) -> None:
    search = open_tab(page, "Search")
    search.get_by_label("Results", exact=True).fill(str(RESULTS))
    search.get_by_label("Search for").fill("a red circle")
    search.get_by_label("Search for").press("Enter")
    cards = search.get_by_role("list", name="Search results").locator("li.card")
    expect(cards).to_have_count(RESULTS, timeout=TIMEOUT_MS)
    summary = search.locator("#search-summary")
    expect(summary).to_contain_text("nearest items by text")
    pictures = cards.locator(".thumb img")
    expect(pictures).to_have_count(RESULTS, timeout=TIMEOUT_MS)
    for i in range(RESULTS):  # each picture fetched from /v1/items/image and decoded
        expect(pictures.nth(i)).to_have_attribute("src", BLOB)
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=pictures.nth(i).element_handle()
        )
    scores = [float(t) for t in cards.locator(".score").all_text_contents()]
    assert scores == sorted(scores, reverse=True)
    captions = {r["caption"] for r in scene_rows(site.world)}
    assert all(c in captions for c in cards.locator(".caption").all_text_contents())

    search.get_by_role("button", name="Add filter").click()
    expect(search.get_by_label("Filter field 1")).to_be_focused()
    page.keyboard.type("split")
    search.get_by_label("Filter value 1").fill("test")
    search.get_by_role("button", name="Search", exact=True).click()
    expect(summary).to_contain_text("where split = test", timeout=TIMEOUT_MS)
    test_scenes = sum(r["split"] == "test" for r in scene_rows(site.world))
    expect(cards).to_have_count(min(RESULTS, test_scenes))
    for chip in cards.locator(".chip").filter(has_text="split:").all_text_contents():
        assert chip == "split: test"
    chip = cards.first.locator(".chip").filter(has_text="n_objects:")
    count = int(str(chip.text_content()).split(": ")[1])
    chip.click()  # a metadata value narrows the search further: a number filter
    expect(summary).to_contain_text(f"n_objects = {count}", timeout=TIMEOUT_MS)
    for text in cards.locator(".chip").filter(has_text="n_objects:").all_text_contents():
        assert text == f"n_objects: {count}"
    expect(search.get_by_role("alert")).to_be_hidden()
    save_screenshot(page, "tab-search", tmp_path, request)

    # A picture dropped on the query: this index holds caption vectors, so the server refuses
    # it, and the refusal is shown in the search form.
    png = (site.world / scene_rows(site.world)[0]["image"]).read_bytes()
    page.evaluate(
        """([data, name]) => {
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          const files = new DataTransfer();
          files.items.add(new File([bytes], name, { type: "image/png" }));
          const drop = document.getElementById("search-drop");
          const options = { dataTransfer: files, bubbles: true, cancelable: true };
          drop.dispatchEvent(new DragEvent("drop", options));
        }""",
        [base64.b64encode(png).decode("ascii"), "scene.png"],
    )
    expect(search.get_by_text("Searching by picture scene.png")).to_be_visible()
    alert = search.get_by_role("alert")
    expect(alert).to_be_visible(timeout=TIMEOUT_MS)
    expect(alert).to_contain_text("400")
    expect(alert).to_contain_text("image")
    search.get_by_role("button", name="Clear").click()
    search.get_by_role("button", name="Search", exact=True).click()
    expect(alert).to_contain_text("Type something to search for")
    expect(search.get_by_label("Search for")).to_be_focused()


def test_chat_tab_keeps_the_picture_streams_and_speaks(
    page: Any, site: Site, tmp_path: Path, request: Any
) -> None:
    page.get_by_text("Settings", exact=True).click()
    page.get_by_label("Maximum answer tokens").fill("16")
    chat = open_tab(page, "Chat")
    row = scene_rows(site.world)[0]
    chat.get_by_label("Attach a picture").set_input_files(str(site.world / row["image"]))
    expect(chat.get_by_label("Attachments of the next message")).to_contain_text("picture")
    message = chat.get_by_role("textbox", name="Message")
    message.fill("What shapes are in this picture?")
    with page.expect_response("**/v1/chat/completions") as first:
        message.press("Enter")
    assert first.value.headers["content-type"].startswith("text/event-stream")
    log = chat.get_by_role("log", name="Conversation")
    replies = log.locator("li.assistant")
    expect(chat.get_by_role("button", name="Send")).to_be_enabled(timeout=TIMEOUT_MS)
    expect(replies.first.locator(".text")).not_to_be_empty()
    expect(chat.get_by_text("Kept in this conversation:")).to_be_visible()
    used = replies.first.locator("details.tools li .tool-name")
    assert "image" in used.all_text_contents()

    chat.get_by_label("Speak replies").check()
    message.fill("What colours are they?")
    with page.expect_request("**/v1/chat/completions") as second:
        chat.get_by_role("button", name="Send").click()
    sent = second.value.post_data_json
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["stream"] is True
    assert any(p["type"] == "image_url" for p in sent["messages"][0]["content"])
    assert sent["messages"][2]["content"] == [{"type": "text", "text": "What colours are they?"}]
    expect(replies).to_have_count(2)
    expect(chat.get_by_role("button", name="Send")).to_be_enabled(timeout=TIMEOUT_MS)
    assert "image" in replies.nth(1).locator("details.tools li .tool-name").all_text_contents()
    spoken = replies.nth(1).get_by_label("Spoken reply")
    expect(spoken).to_be_attached(timeout=TIMEOUT_MS)
    expect(spoken).to_have_attribute("src", BLOB)
    seconds = page.wait_for_function(
        "audio => audio.readyState >= 1 && audio.duration > 0 && audio.duration",
        arg=spoken.element_handle(),
        timeout=TIMEOUT_MS,
    ).json_value()
    assert seconds > 0.2
    expect(chat.get_by_role("alert")).to_be_hidden()
    save_screenshot(page, "tab-chat", tmp_path, request)

    page.reload()  # the conversation is kept by the page across a reload
    expect(panel(page, "Chat").locator("li.message")).to_have_count(4)
    panel(page, "Chat").get_by_role("button", name="New conversation").click()
    expect(panel(page, "Chat").locator("li.message")).to_have_count(0)
    panel(page, "Chat").get_by_role("button", name="Send").click()
    expect(panel(page, "Chat").get_by_role("alert")).to_contain_text("Type a message")


def test_experiments_tab_sorts_the_leaderboard_and_shows_each_model(
    page: Any, site: Site, tmp_path: Path, request: Any
) -> None:
    experiments = open_tab(page, "Experiments")
    choice = experiments.get_by_label("Experiment", exact=True)
    expect(choice.locator("option")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(choice).to_have_value(SWEEP_ID)
    table = experiments.get_by_role("table")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(len(SWEEP_STRATEGIES))
    headers = [str(t) for t in table.locator("thead th").all_text_contents()]
    column = headers.index("accuracy")
    written = [float(row["accuracy"]) for row in leaderboard_rows(site)]

    heading = table.get_by_role("button", name="accuracy", exact=True)
    heading.click()
    expect(table.locator("thead th").nth(column)).to_have_attribute("aria-sort", "ascending")
    assert cells(rows, column) == pytest.approx(sorted(written), abs=5e-4)
    heading.press("Enter")  # the keyboard sorts too, and the focus stays on the heading
    expect(table.locator("thead th").nth(column)).to_have_attribute("aria-sort", "descending")
    expect(table.get_by_role("button", name="accuracy", exact=True)).to_be_focused()
    assert cells(rows, column) == pytest.approx(sorted(written, reverse=True), abs=5e-4)

    experiments.get_by_label("Model", exact=True).select_option(
        label_starting(experiments, "concat (")
    )
    missing = experiments.get_by_role("img", name="Accuracy with modalities missing")
    expect(missing.locator("rect")).to_have_count(3)
    labels = sorted(
        str(r.get_attribute("aria-label")).rsplit(" ", 1)[0] for r in missing.locator("rect").all()
    )
    assert labels == ["audio", "audio + image", "image"]
    shares = experiments.get_by_role("img", name="Contribution of each modality")
    expect(shares.locator("rect")).to_have_count(2)
    plots = experiments.locator("#plots img")
    expect(plots).to_have_count(
        len(list((site.experiments / "sweeps" / "av-digits").glob("*.png")))
    )
    for i in range(plots.count()):
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=plots.nth(i).element_handle()
        )
    expect(experiments.get_by_role("alert")).to_be_hidden()
    save_screenshot(page, "tab-experiments", tmp_path, request)

    choice.select_option(TUNE_ID)
    expect(experiments.locator("#experiment-summary")).to_contain_text("best trial #")
    expect(rows).to_have_count(3)
    expect(experiments.get_by_role("heading", name="Per model")).to_be_hidden()
    expect(plots).to_have_count(1)
    expect(experiments.locator("#plots figcaption")).to_have_text("pareto.png")


def leaderboard_rows(site: Site) -> list[dict[str, str]]:
    path = site.experiments / "sweeps" / "av-digits" / "leaderboard.csv"
    with path.open() as handle:
        return list(csv.DictReader(handle))


def cells(rows: Any, column: int) -> list[float]:
    return [float(str(r.locator("td").nth(column).text_content())) for r in rows.all()]


def label_starting(scope: Any, prefix: str) -> str:
    options = scope.get_by_label("Model", exact=True).locator("option").all_text_contents()
    return next(str(o) for o in options if o.startswith(prefix))
