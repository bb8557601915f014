"""The HTML report in a real headless browser (Debian's chromium-headless-shell or chromium): every
image loads, nothing overflows the page, the section that failed the gate comes first, small images
are enlarged without smoothing, file names break only at separators, caveats and class counts show.

Skipped only when no Chromium is installed and CNNTOOL_REQUIRE_BROWSER is unset (CI sets it)."""

import json
import os
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from cnntool.cli.main import app

from .conftest import write

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "headless_shell")

#: Run in the page once everything has loaded; its findings go into <pre id=cnntool-check>.
CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const out = {};
  const imgs = [...document.images];
  out.images = imgs.length;
  out.broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.closest('figure').title);
  out.pageWidth = document.documentElement.scrollWidth;
  out.viewWidth = window.innerWidth;
  out.sections = [...document.querySelectorAll('section')].map(s => [s.id, s.className]);
  out.enlarged = [...document.querySelectorAll('img.enlarged')].map(
      i => [i.naturalWidth, Math.round(i.getBoundingClientRect().width), getComputedStyle(i).imageRendering]);
  const splitWords = [];
  for (const cap of document.querySelectorAll('figcaption')) {
    for (const node of cap.childNodes) {
      if (node.nodeName === 'BR') break;
      if (node.nodeType !== 3 || !node.textContent) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
      if (lines.size > 1) splitWords.push(node.textContent);
    }
  }
  out.splitWords = splitWords;
  out.overflowing = [...document.querySelectorAll('figure, figcaption, table, p, h1, h2, nav')]
      .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible')
      .map(e => e.tagName + ':' + e.textContent.slice(0, 60));
  const caveat = document.querySelector('.caveat');
  out.caveat = caveat ? caveat.textContent : null;
  out.caveatTop = caveat ? caveat.getBoundingClientRect().top : null;
  const first = document.querySelector('section');
  out.firstSectionTop = first ? first.getBoundingClientRect().top : null;
  out.classRows = document.querySelectorAll('table.classes tr').length;
  const pre = document.createElement('pre');
  pre.id = 'cnntool-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    path = find_browser()
    if path is None:
        if os.environ.get("CNNTOOL_REQUIRE_BROWSER"):
            pytest.fail("CNNTOOL_REQUIRE_BROWSER is set but no Chromium is installed: "
                        "apt-get install -y chromium-headless-shell")
        pytest.skip("no Chromium installed (apt-get install -y chromium-headless-shell)")
    return path


def run_browser(browser, tmp_path, *args, timeout=120):
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def report(tmp_path_factory, photos):
    """A labelled set of 25-pixel faces-like gray images and colour crops with long names, a test set
    that leaks two of them, audited with --labels (random weights: a caveat) and --fail-on leaks."""
    root = tmp_path_factory.mktemp("browser")
    train, test = root / "train", root / "test"
    rng = np.random.default_rng(0)
    for cls in ("faces_of_people", "landscapes-and-objects"):
        (train / cls).mkdir(parents=True)
    for k in range(14):
        face = np.clip(rng.normal(120, 40, (25, 25)), 0, 255).astype(np.uint8)
        face = cv2.GaussianBlur(face, (0, 0), 1.0)
        write(train / "faces_of_people" / f"subject_{k:02d}_frontal_view_under_studio_lighting.png", face)
    for k, (name, image) in enumerate(sorted(photos.items())):
        write(train / "landscapes-and-objects" / f"photo_{name}_crop_from_scikit_image_sample_data_{k}.jpg", image)
    test.mkdir()
    shutil.copy(train / "faces_of_people" / "subject_03_frontal_view_under_studio_lighting.png", test / "leak1.png")
    shutil.copy(train / "landscapes-and-objects" / "photo_a_crop_from_scikit_image_sample_data_0.jpg",
                test / "leak2.jpg")
    write(test / "other.png", photos["e"][::-1])
    page = root / "report.html"
    result = CliRunner().invoke(app, ["audit", str(train), "--labels", "-m", "lenet5", "--against", str(test),
                                      "--fail-on", "leaks", "--no-cache", "-q", "--report", str(page)])
    assert result.exit_code == 1, result.output
    return page


def test_the_report_renders_as_intended_in_a_real_browser(browser, report, tmp_path):
    text = report.read_text()
    checked = tmp_path / "checked.html"
    checked.write_text(text.replace("</body>", CHECK_SCRIPT + "</body>"))
    for width in (1280, 760):
        proc = run_browser(browser, tmp_path, f"--window-size={width},900", "--virtual-time-budget=5000",
                           "--dump-dom", checked.as_uri())
        found = re.search(r'<pre id="cnntool-check">(.*?)</pre>', proc.stdout, re.S)
        assert found, proc.stdout[-2000:]
        out = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                         .replace("&gt;", ">"))
        assert out["images"] >= 20 and out["broken"] == [], out["broken"]
        assert out["pageWidth"] <= out["viewWidth"], (width, out["pageWidth"], out["overflowing"])
        assert out["overflowing"] == [], out["overflowing"]
        assert out["sections"][0] == ["leaks", "gate-failed"], out["sections"]
        assert [s for s in out["sections"] if s[1]] == [["leaks", "gate-failed"]]
        assert out["splitWords"] == [], out["splitWords"]
        assert out["enlarged"] and all(natural == 25 and shown >= 100 and rendering == "pixelated"
                                       for natural, shown, rendering in out["enlarged"]), out["enlarged"]
        assert "random weights" in out["caveat"] and out["caveatTop"] < out["firstSectionTop"]
        assert out["classRows"] == 4  # header, two classes, total


def test_a_screenshot_of_the_report_shows_the_failed_gate_at_the_top(browser, report, tmp_path):
    shot = tmp_path / "report.png"
    run_browser(browser, tmp_path, "--window-size=1280,1400", f"--screenshot={shot}", report.as_uri())
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1400, 1280)
    assert float(image.std()) > 20  # a page, not a blank
    red = (np.abs(image.astype(int) - (0x20, 0x00, 0xb0)).sum(axis=2) < 60)  # the gate-failed colour (BGR)
    rows = np.flatnonzero(red.any(axis=1))
    assert rows.size and rows[0] < 700, "the failed gate's red marks are not near the top"
    keep = os.environ.get("CNNTOOL_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
