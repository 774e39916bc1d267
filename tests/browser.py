"""Headless Chromium (Debian's /usr/bin/chromium driven by playwright) for the tests that look at pages.

`look(url)` opens a page in a 1,400 px wide window and returns what a reader sees: the document's
width against the window's (horizontal overflow), the vertical position of each heading, the visible
text, a full-page screenshot, and whether Chinese is drawn with real glyphs (not a missing font's boxes). Screenshots are also copied to $HIPBRIDGE_SCREENSHOT_DIR when set,
so a person can look at them after the run.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

WIDTH = 1400


def chromium_path() -> str:
    path = os.environ.get("HIPBRIDGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:  # on a developer's machine a skip; in CI (.ci/run installs it) a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
    return path


@dataclass
class Look:
    url: str
    scroll_width: int
    client_width: int
    height: int
    text: str
    headings: dict[str, int] = field(default_factory=dict)      # heading text -> y position (px)
    overflowing: list[str] = field(default_factory=list)        # elements wider than the window
    screenshot: Path | None = None
    cjk_glyphs: bool = False   # Chinese is drawn with real glyphs, not the boxes of a missing font


_MEASURE = """() => {
  const de = document.documentElement;
  const heads = {};
  for (const h of document.querySelectorAll('h1,h2,h3')) {
    heads[h.innerText.trim()] = Math.round(h.getBoundingClientRect().top + window.scrollY);
  }
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > de.clientWidth + 1 && r.width > 0) wide.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right));
  }
  return {sw: de.scrollWidth, cw: de.clientWidth, h: de.scrollHeight, text: document.body.innerText,
          heads: heads, wide: wide.slice(0, 20)};
}"""


def look(url: str, shot: Path, *, headers: dict[str, str] | None = None, cookies: list[dict] | None = None,
         wait_for: str | None = None, timeout_ms: int = 60_000, full_page: bool = True) -> Look:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            ctx = browser.new_context(viewport={"width": WIDTH, "height": 900}, locale="zh-CN",
                                      extra_http_headers=headers or {})
            if cookies:
                ctx.add_cookies(cookies)
            page = ctx.new_page()
            page.goto(url, wait_until="networkidle", timeout=timeout_ms)
            if wait_for:
                page.wait_for_selector(wait_for, timeout=timeout_ms)
            m = page.evaluate(_MEASURE)
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=full_page)
            cjk = draws_cjk(page)
        finally:
            browser.close()
    keep = os.environ.get("HIPBRIDGE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    return Look(url, m["sw"], m["cw"], m["h"], m["text"], m["heads"], m["wide"], shot, cjk)


def draws_cjk(page) -> bool:
    """Two different Chinese words in the page's own font, each photographed: without a CJK font both
    are the same row of boxes, so the pictures are equal. (Run after the page's screenshot.)"""
    page.evaluate("""() => {
      for (const [id, word] of [['hb-glyph-a', '巡检报告'], ['hb-glyph-b', '数据质量']]) {
        const el = document.createElement('div');
        el.id = id; el.textContent = word;
        el.style.cssText = 'position:fixed;left:0;top:0;z-index:99999;background:#fff;color:#000;font-size:32px;'
                         + 'padding:4px;font-family:inherit;visibility:hidden';
        document.body.appendChild(el);
      }
    }""")
    shots = []
    for el_id in ("hb-glyph-a", "hb-glyph-b"):
        page.evaluate(f"() => document.getElementById('{el_id}').style.visibility = 'visible'")
        shots.append(page.locator(f"#{el_id}").screenshot())
        page.evaluate(f"() => document.getElementById('{el_id}').remove()")
    return shots[0] != shots[1]


def assert_fits(seen: Look) -> None:
    """No horizontal overflow at 1,400 px: the document is no wider than the window."""
    assert seen.client_width <= WIDTH
    assert seen.scroll_width <= seen.client_width, (seen.scroll_width, seen.client_width, seen.overflowing)


def assert_screenshot(seen: Look, min_bytes: int = 20_000) -> None:
    """The screenshot exists, is a PNG and is not a blank page (a blank 1,400 px PNG is a few kB)."""
    assert seen.screenshot is not None and seen.screenshot.exists()
    data = seen.screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert len(data) > min_bytes, f"screenshot of {seen.url} is {len(data)} bytes: blank?"
    assert seen.cjk_glyphs, "Chinese is drawn as boxes: no CJK font (.ci/run installs fonts-wqy-zenhei)"
