"""The operator console in a real browser: Debian's headless Chromium, driven by Playwright.

It logs on with an operator key (HTTP Basic), sees records appear in the live settlement log
while a client trades, opens a certificate and sees it verified, and takes a screenshot that
must not be blank. `.ci/run` installs Chromium (`apt-get install chromium`); where no
browser can be had, the test says so and skips.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import zlib

import pytest

from tests.console_exchange import buy_to_retire, console_exchange, trade

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# as root in a sandbox with no network: no sandbox, no GPU, no background connections
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium here: `apt-get install chromium` (CI does)"
)


def png_pixels(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct colours in a sample of rows) of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    colours, prev = set(), bytearray(width * channels)
    for y in range(height):
        line = bytearray(raw[y * stride + 1 : (y + 1) * stride])
        f = raw[y * stride]
        for i in range(len(line)):  # undo the row's filter (PNG spec, section 9)
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        if y % 7 == 0:
            colours.update(bytes(line[i : i + 3]) for i in range(0, len(line), channels))
        prev = line
    return width, height, len(colours)


def test_an_operator_watches_the_live_log_and_verifies_a_certificate(tmp_path):
    from playwright.async_api import async_playwright

    async def body():
        async with console_exchange(tmp_path) as x, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                context = await browser.new_context(
                    http_credentials={
                        "username": x.operator.key_id,
                        "password": x.operator.secret,
                    },
                    viewport={"width": 1400, "height": 900},
                )
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await page.goto(x.base + "/")
                await page.wait_for_selector("#log-rows tr")  # the funding's deposits
                top = int(await page.locator("#log-rows tr").first.get_attribute("data-seq"))
                await page.wait_for_function("document.querySelector('#log-status')"
                                             ".textContent.startsWith('live')")  # fmt: skip
                await trade(x)
                # the fill arrives in the live log, without a reload
                fill = page.locator("#log-rows tr", has_text="fill").first
                await fill.wait_for(timeout=15_000)
                assert int(await fill.get_attribute("data-seq")) > top
                cert_id = await buy_to_retire(x)
                await page.click("text=Certificates")
                await page.fill("#cert-id", cert_id)
                for _ in range(50):  # the console indexes it once the log has it
                    await page.click("#cert-form button")
                    verdict = page.locator("#cert-verdict .verdict")
                    await verdict.wait_for()
                    if "verified" in (await verdict.text_content() or ""):
                        break
                    await asyncio.sleep(0.1)
                text = await verdict.text_content() or ""
                assert text.startswith(f"✓ {cert_id} verified"), text
                assert await page.locator("#cert-records pre").count() >= 1  # the records
                assert "hash" in (await page.locator("#cert-records").text_content() or "")
                await page.click("text=Settlement log")
                shot = await page.screenshot()
                width, height, colours = png_pixels(shot)
                assert (width, height) == (1400, 900) and colours > 20, colours
                assert errors == []
            finally:
                await browser.close()

    asyncio.run(asyncio.wait_for(body(), 120))
