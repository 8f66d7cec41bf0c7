"""The web console (`GET /`) in headless Chromium (Debian's `chromium`, driven by Playwright):
load it, send a message, watch the answer stream into the assistant bubble, check the memory
panel, and save a screenshot to `artifacts/console.png`."""
import os
import pathlib
import shutil

import pytest

from conftest import ROOT

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("ENGRAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = ROOT / "artifacts" / "console.png"


@pytest.fixture(scope="module")
def browser():
    if not pathlib.Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/setup-ci.sh (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def test_console_streams_an_answer_and_shows_the_memory_panel(server, browser):
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    # Record every value `data-streaming` takes on the assistant bubble, and the text it shows
    # while streaming, from inside the page (so no transition is missed between polls).
    page.add_init_script("""
        window.__streaming = [];
        window.__partials = [];
        new MutationObserver(records => {
          for (const r of records) {
            const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
            const bubble = el && el.closest && el.closest('.msg.assistant, .msg.error');
            if (!bubble) continue;
            if (r.type === 'attributes' && r.attributeName === 'data-streaming')
              window.__streaming.push(bubble.dataset.streaming);
            if (bubble.dataset.streaming === 'true' && bubble.textContent)
              window.__partials.push(bubble.textContent);
          }
        }).observe(document, {subtree: true, childList: true, characterData: true,
                              attributes: true, attributeFilter: ['data-streaming']});
    """)
    page.goto(server.url + "/")
    assert page.title() == "Engram console"
    playwright_api.expect(page.locator("#model")).to_contain_text("SmolLM2", timeout=30_000)
    panel = page.locator("[data-testid=memory-panel]")
    playwright_api.expect(panel).to_be_visible()
    before = panel.inner_text()

    page.fill("#input", "Name three colours of the rainbow.")
    page.click("#send")
    bubble = page.locator(".msg.assistant").last
    playwright_api.expect(page.locator(".msg.user").last).to_have_text("Name three colours of the rainbow.")
    # The answer streams: the bubble is marked streaming, fills in, then is marked done.
    playwright_api.expect(bubble).to_have_attribute("data-streaming", "false", timeout=120_000)
    streaming = page.evaluate("window.__streaming")
    partials = page.evaluate("window.__partials")
    assert streaming[:1] == ["true"] and streaming[-1] == "false", streaming
    answer = bubble.inner_text()
    assert answer.strip(), "the assistant bubble is empty"
    assert page.locator(".msg.error").count() == 0, page.locator(".msg.error").all_inner_texts()
    assert len(set(partials)) >= 2, f"the text did not arrive in pieces: {partials}"
    assert all(answer.startswith(p) for p in partials), "streamed text was not a growing prefix"
    # The memory panel was redrawn from the turn's report, and the usage line filled in.
    after = panel.inner_text()
    assert after != before, f"memory panel not updated: {after!r}"
    assert "this turn" in after or "recalled" in after or "captured" in after, after
    playwright_api.expect(page.locator("#stats")).to_contain_text("cached")
    assert not errors, errors

    # A second turn in the same session reuses the KV cache of the first.
    page.fill("#input", "And one more?")
    page.press("#input", "Enter")
    second = page.locator(".msg.assistant").nth(1)
    playwright_api.expect(second).to_have_attribute("data-streaming", "false", timeout=120_000)
    stats = page.locator("#stats").inner_text()
    cached = int(stats.split("(")[1].split()[0])
    assert cached > 0, stats

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    print(f"console screenshot: {SCREENSHOT}")
    page.close()
