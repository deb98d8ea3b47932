"""Headless Chromium (Debian's ``chromium``) driven by npm ``playwright-core``: a page, a link, a PNG."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.e2e.processes import ProcessRegistry

E2E_DIR = Path(__file__).resolve().parent
SCRIPT = E2E_DIR / "screenshot.cjs"
CHROMIUM = Path("/usr/bin/chromium")


class BrowserMissingError(RuntimeError):
    """Chromium, node or playwright-core is not installed."""


def check_browser_tools() -> str:
    """The ``node`` executable, after checking Chromium and playwright-core are installed.

    :raises BrowserMissingError: naming what is missing and ``scripts/e2e_setup.sh``, which installs it.
    """
    missing = []
    node = shutil.which("node")
    if node is None:
        missing.append("node (apt-get install -y nodejs npm)")
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if not (E2E_DIR / "node_modules" / "playwright-core").is_dir():
        missing.append(f"playwright-core (cd {E2E_DIR} && npm ci)")
    if missing or node is None:
        raise BrowserMissingError(f"missing for the UI check: {', '.join(missing)}; run scripts/e2e_setup.sh")
    return node


@dataclass
class PageCheck:
    """What the browser saw on the page."""

    found: bool
    screenshot: Path
    raw: dict[str, Any]

    @property
    def text(self) -> str:
        """The link's visible text."""
        return str(self.raw.get("text") or "")

    @property
    def href(self) -> str:
        """The link's href."""
        return str(self.raw.get("href") or "")


def screenshot_link(
    registry: ProcessRegistry,
    url: str,
    *,
    link_name: str,
    link_href: str,
    screenshot: Path,
    log_path: Path,
    timeout_seconds: float = 90.0,
) -> PageCheck:
    """Open ``url``, wait for the ``<a href=link_href>``, take a full-page PNG.

    The node process runs in its own process group (registered, so it is stopped with the rest).

    :param registry: the harness's process registry.
    :param url: the Airflow UI page.
    :param link_name: the link's name (e.g. ``Machine Image``).
    :param link_href: the URL the link must point at.
    :param screenshot: where the PNG goes.
    :param log_path: node's stderr.
    :param timeout_seconds: how long to wait for the link to render.
    """
    node = check_browser_tools()
    user_data = Path(tempfile.mkdtemp(prefix="ami-e2e-chromium-"))
    options = {
        "url": url,
        "linkName": link_name,
        "linkHref": link_href,
        "screenshot": str(screenshot),
        "userDataDir": str(user_data),
        "executablePath": str(CHROMIUM),
        "timeoutMs": int(timeout_seconds * 1000),
    }
    try:
        process = registry.start(
            "chromium",
            [node, str(SCRIPT), json.dumps(options)],
            env={"PATH": "/usr/bin:/bin", "HOME": str(user_data), "NODE_PATH": str(E2E_DIR / "node_modules")},
            log_path=log_path,
            cwd=E2E_DIR,
            stdout=subprocess.PIPE,
        )
        try:
            out, _ = process.popen.communicate(timeout=timeout_seconds + 60)
        except subprocess.TimeoutExpired:
            registry.stop(process, grace=5)
            raise AssertionError(
                f"the browser did not finish in {timeout_seconds + 60:.0f} s; see {log_path}"
            ) from None
        process.stop_outcome = f"exited {process.popen.returncode}"
    finally:
        shutil.rmtree(user_data, ignore_errors=True)
    lines = out.decode("utf-8", errors="replace").strip().splitlines()
    if not lines:
        raise AssertionError(f"the browser script printed nothing (exit {process.popen.returncode}); see {log_path}")
    raw = json.loads(lines[-1])
    return PageCheck(found=bool(raw.get("found")), screenshot=screenshot, raw=raw)
