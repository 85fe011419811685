"""A headless Chromium driven over the Chrome DevTools Protocol, and a loopback server that serves a
report directory the way Jenkins serves a published HTML report.

Jenkins' DirectoryBrowserSupport.java sends every file of a published report with the header
``Content-Security-Policy: sandbox allow-same-origin; default-src 'none'; img-src 'self'; style-src 'self';``
(the default of the system property ``hudson.model.DirectoryBrowserSupport.CSP``). ``ReportServer``
serves one directory twice: under ``/csp/`` with that header, and under ``/open/`` without it, so a
page can be compared with its unrestricted render.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import queue
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

JENKINS_CSP = "sandbox allow-same-origin; default-src 'none'; img-src 'self'; style-src 'self';"

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1", "--remote-allow-origins=*"]


class _Handler(SimpleHTTPRequestHandler):
    def translate_path(self, path: str) -> str:
        for prefix in ("/csp/", "/open/"):
            if path.startswith(prefix):
                return super().translate_path("/" + path[len(prefix):])
        return super().translate_path("/nonexistent" + path)

    def end_headers(self) -> None:
        if self.path.startswith("/csp/"):
            self.send_header("Content-Security-Policy", JENKINS_CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class ReportServer:
    """``with ReportServer(directory) as server: server.url("csp", "gate.html")``."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_Handler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ReportServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, mode: str, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mode}/{name}"


@dataclass
class PageLoad:
    """What a page showed: console/log entries, facts measured in the page, a full-page screenshot."""

    url: str
    log: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""

    def csp_violations(self) -> list[str]:
        return [e["text"] for e in self.log
                if "Content Security Policy" in e.get("text", "") or e.get("text", "").startswith("Refused to")]

    def errors(self) -> list[str]:
        """Error entries, except the browser's own request for /favicon.ico (Jenkins serves one; the
        test server does not)."""
        return [f"{e.get('source')}: {e.get('text')} {e.get('url', '')}" for e in self.log
                if e.get("level") == "error" and not e.get("url", "").endswith("/favicon.ico")]


# Measured inside the page through DevTools (Runtime.evaluate runs even where the page itself may not
# run scripts, as under the policy's sandbox).
_FACTS = """(() => {
  const sheet = [...document.styleSheets].map(s => ({href: s.href, rules: (() => {
      try { return s.cssRules.length } catch (e) { return -1 } })()}));
  const header = document.querySelector('header');
  const imgs = [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
      naturalWidth: i.naturalWidth, width: i.getBoundingClientRect().width}));
  const svgs = [...document.querySelectorAll('figure svg')].map(s => {
      const r = s.getBoundingClientRect(); return {width: r.width, height: r.height}; });
  return JSON.stringify({sheets: sheet, headerBackground: header ? getComputedStyle(header).backgroundColor : null,
      bodyMargin: getComputedStyle(document.body).marginTop, images: imgs, svgs: svgs,
      inlineStyles: document.querySelectorAll('[style]').length,
      styleElements: document.querySelectorAll('style').length,
      scripts: document.querySelectorAll('script').length,
      height: document.documentElement.scrollHeight});
})()"""


class Chromium:
    """One headless browser process; ``load(url)`` opens the url in a fresh tab and reports on it."""

    def __init__(self, binary: str, *, width: int = 1280, height: int = 900, timeout: float = 60.0) -> None:
        import websocket  # websocket-client (dev extra)

        self.width, self.height, self.timeout = width, height, timeout
        self.profile = tempfile.TemporaryDirectory(prefix="mlci-chromium-")
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile.name}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        endpoint = self._devtools_endpoint()
        self.ws = websocket.create_connection(endpoint, timeout=timeout, suppress_origin=True)
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def _devtools_endpoint(self) -> str:
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            for line in self.proc.stderr:  # type: ignore[union-attr]
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + self.timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                return match.group(1)
        self.close()
        raise RuntimeError("chromium did not open its DevTools port: " + "".join(seen)[-1000:])

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)
        raise TimeoutError(method)

    def _wait_event(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method and e.get("sessionId") == session for e in self._events):
                return
            self._events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def load(self, url: str) -> PageLoad:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Log", "Runtime"):
                self.send(f"{domain}.enable", session=session)
            self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                             "deviceScaleFactor": 1, "mobile": False}, session)
            self._events = [e for e in self._events if e.get("sessionId") != session]
            self.send("Page.navigate", {"url": url}, session)
            self._wait_event("Page.loadEventFired", session)
            facts = json.loads(self.send("Runtime.evaluate", {"expression": _FACTS, "returnByValue": True},
                                         session)["result"]["value"])
            height = int(facts["height"])
            self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": height,
                                                             "deviceScaleFactor": 1, "mobile": False}, session)
            shot = self.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
            log = [e["params"]["entry"] for e in self._events
                   if e.get("sessionId") == session and e.get("method") == "Log.entryAdded"]
            log += [{"level": "error", "source": "javascript", "text": e["params"]["exceptionDetails"]["text"]}
                    for e in self._events
                    if e.get("sessionId") == session and e.get("method") == "Runtime.exceptionThrown"]
            return PageLoad(url=url, log=log, facts=facts, screenshot=base64.b64decode(shot))
        finally:
            self.send("Target.closeTarget", {"targetId": target})
            self._events = [e for e in self._events if e.get("sessionId") != session]

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.profile.cleanup()


def pixel_difference(png_a: bytes, png_b: bytes) -> float:
    """Share of pixels that differ between two screenshots (1.0 when their sizes differ)."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png_a)).convert("RGB"))
    b = np.asarray(Image.open(io.BytesIO(png_b)).convert("RGB"))
    if a.shape != b.shape:
        return 1.0
    return float(np.any(a != b, axis=2).mean())
