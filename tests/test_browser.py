"""The interactive notebook in a real browser: JupyterLab on a loopback port, notebook 03 opened in headless
Chromium (Debian's package, driven by playwright; no browser download), every cell run from the Run menu, then
the threshold slider moved, a class chosen and the export button clicked, checking what the user would see.

Skipped, with the reason, where Chromium or playwright is missing (`.ci/run` installs Chromium where it can).
Set LAB_SCREENSHOT_DIR to keep a screenshot of the explorer, and LAB_SCREENSHOT_RUNS to the run store of a
finished `make demo` (runs/demo/runs) to show its GAN instead of a 30-step one: docs/threshold_explorer.png came
from `LAB_SCREENSHOT_DIR=docs LAB_SCREENSHOT_RUNS=runs/demo/runs pytest tests/test_browser.py`.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lab.notebooks import NOTEBOOK_DIR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium)"),
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is not installed (pip install -e .[dev])"),
]
# Flags for a machine without a display or network (the image's own probe used the same).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOK = "03_filtering_threshold.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook_copy(folder: Path) -> Path:
    """Notebook 03 with a parameters cell for a fast run: 30-step GAN and filter, a small pool, t = 0.5 (with
    LAB_SCREENSHOT_RUNS: the smoke profile's own runs, read from that store)."""
    nb = json.loads((NOTEBOOK_DIR / NOTEBOOK).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    src = "".join(cell["source"])
    runs = os.environ.get("LAB_SCREENSHOT_RUNS")
    values = {"STEPS": "None" if runs else "30", "THRESHOLD": "0.5", "POOL_PER_CLASS": "None" if runs else "40",
              "FIG_DIR": repr(str(folder / "figures")), "RUNS_DIR": repr(str(Path(runs).resolve() if runs else folder / "runs"))}
    for k, v in values.items():
        src = re.sub(rf"^{k}\s*=.*$", f"{k} = {v}", src, flags=re.M)
    cell["source"] = src
    path = folder / NOTEBOOK
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """A JupyterLab server on a free loopback port, serving a folder with the notebook; yields (url, folder)."""
    folder = tmp_path_factory.mktemp("browser")
    _notebook_copy(folder)
    port, token = _free_port(), "lab-browser-test"
    env = dict(os.environ, JUPYTERLAB_WORKSPACES_DIR=str(folder / ".workspaces"), JUPYTER_RUNTIME_DIR=str(folder / ".rt"))
    log = open(folder / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
         "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start: {(folder / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield f"{url}/lab/tree/{NOTEBOOK}?token={token}", folder
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def test_threshold_explorer_in_chromium(jupyterlab):
    url, folder = jupyterlab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            _drive(page, url, folder)
        except Exception:
            page.screenshot(path=str(folder / "failure.png"), full_page=True)
            print(f"screenshot of the page: {folder / 'failure.png'}; server log: {folder / 'jupyterlab.log'}")
            raise
        finally:
            browser.close()


def _run_all(page) -> None:
    """Run every cell from the menu bar, as a user would, once the kernel is idle; the click is repeated if no
    cell starts (a click that lands while JupyterLab is still restoring its layout is lost)."""
    page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(timeout=120_000)  # the status bar's kernel state
    started = page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]")).first
    for _ in range(3):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        try:
            started.wait_for(timeout=30_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError("Run > Run All Cells started no cell in three tries")


def _drive(page, url, folder):
    page.goto(url)
    page.locator(".jp-NotebookPanel").first.wait_for(timeout=120_000)
    _run_all(page)

    rate = page.locator(".widget-html", has_text="accepted").first
    error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", has_text="Error")
    deadline = time.time() + 600  # the last cell trains a 30-step GAN and filter, then builds the explorer
    while not rate.is_visible():
        assert not error.count(), f"a cell failed: {error.first.inner_text()[-1500:]}"
        assert time.time() < deadline, "the explorer did not appear within 10 minutes of Run All"
        time.sleep(1)
    explorer = page.locator(".widget-vbox", has=page.locator(".widget-slider")).last
    image = explorer.locator("img").first
    image.wait_for(timeout=60_000)
    text0, img0 = rate.inner_text(), image.get_attribute("src")
    assert "at threshold 0.50" in text0

    # Move the slider: type a new value into its readout, as a user can (continuous_update is off).
    readout = explorer.locator(".widget-slider .widget-readout").first
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("0.95")
    page.keyboard.press("Enter")
    expect(rate).to_contain_text("at threshold 0.95", timeout=60_000)
    text1 = rate.inner_text()
    expect(image).not_to_have_attribute("src", img0, timeout=60_000)
    img1 = image.get_attribute("src")
    assert _accepted(text1) < _accepted(text0)  # a higher threshold keeps fewer of the same pool

    # A second slider move with the keyboard on the handle: one step (0.01) down. The explorer sets its picture
    # before its text, so once the text shows an update the picture is that update's (or about to be).
    explorer.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowLeft")
    expect(rate).to_contain_text("at threshold 0.94", timeout=60_000)
    assert _accepted(rate.inner_text()) >= _accepted(text1)
    expect(image).not_to_have_attribute("src", img1, timeout=60_000)
    img2 = image.get_attribute("src")

    # Choose another class: the per-class counts and the grids of that class are shown.
    explorer.locator(".widget-dropdown", has=page.locator("label", has_text="class")).locator("select").select_option(index=3)
    expect(rate).to_contain_text("class 3:", timeout=60_000)
    expect(image).not_to_have_attribute("src", img2, timeout=60_000)
    img3 = image.get_attribute("src")

    # Choose a class-adaptive rule: the slider is its base level, the text gives the per-class thresholds.
    explorer.locator(".widget-dropdown", has=page.locator("label", has_text="rule")).locator("select").select_option(
        "quantile")
    expect(rate).to_contain_text("with the quantile rule at base 0.94; per-class thresholds", timeout=60_000)
    expect(image).not_to_have_attribute("src", img3, timeout=60_000)

    if os.environ.get("LAB_SCREENSHOT_DIR"):
        out = Path(os.environ["LAB_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        no_news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's news pop-up covers a corner
        if no_news.count():
            no_news.first.click()
        image.evaluate("img => img.decode()")
        explorer.screenshot(path=str(out / "threshold_explorer.png"))

    # Export: the button writes the figure (PDF + PNG) and says where.
    explorer.get_by_role("button", name="Export figure").click()
    saved = explorer.locator(".widget-html", has_text="saved").first
    saved.wait_for(timeout=60_000)
    files = sorted(p.name for p in (folder / "figures").glob("*explorer_t0.94_quantile.*"))
    assert files == ["03_digits_add_explorer_t0.94_quantile.pdf", "03_digits_add_explorer_t0.94_quantile.png"], files
    for f in files:
        assert f in saved.inner_text()


def _accepted(text: str) -> int:
    return int(re.search(r"accepted ([\d,]+) /", text).group(1).replace(",", ""))
