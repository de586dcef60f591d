#!/usr/bin/python3
"""Open a report.html in headless Chromium and check it the way a reader's
browser would see it (tests/cli_report_browser.sh runs this).

    report_browser.py --chromium /usr/bin/chromium --report report.html \
        --sections settings,lm-accuracy,... --screenshot shot.png

Drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe:
JSON messages ending in a NUL byte, fd 3 into the browser, fd 4 out of it), so
it needs nothing beyond the Python standard library. Checks: every section id
is on the page; every <img> and every SVG <image> decodes to an image wider
than 0 pixels; the page makes no request other than for itself and data: URLs;
nothing is logged as an error (console, exceptions, the browser's log, e.g. a
Content-Security-Policy violation). Writes a full-page screenshot. Prints what
failed and exits 1, or exits 0.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time


class Browser:
    """Chromium over the DevTools pipe: send commands, collect events."""

    def __init__(self, chromium, profile):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def child_fds():  # the browser reads commands on fd 3 and writes replies on fd 4
            os.dup2(to_browser_r, 100)  # out of the way first: either may already be fd 3 or 4
            os.dup2(from_browser_w, 101)
            os.dup2(100, 3)
            os.dup2(101, 4)

        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-default-apps", "--remote-debugging-pipe",
                "--user-data-dir=" + profile, "--window-size=1200,900", "about:blank"]
        # close_fds=False: fds 3 and 4 are made in child_fds, after Popen would close them
        self.proc = subprocess.Popen(args, close_fds=False, preexec_fn=child_fds,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            if time.time() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe (exit %s)" % self.proc.poll())
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None, timeout=60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method, timeout=60):
        deadline = time.time() + timeout
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            e = self._read_message(deadline)
            self.events.append(e)
            if e.get("method") == method:
                return e

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # it may close the pipe before answering
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# Runs in the page: which section ids exist, and how each image decodes.
CHECK_PAGE = """
(async (ids) => {
  const missing = ids.filter(id => !document.getElementById(id));
  const bad = [];
  for (const img of document.querySelectorAll('img')) {
    try { await img.decode(); } catch (e) {}
    if (!(img.complete && img.naturalWidth > 0)) bad.push('img ' + (img.alt || img.src.slice(0, 40)));
  }
  const svgImages = document.querySelectorAll('svg image');
  for (const el of svgImages) {
    const probe = new Image();
    probe.src = el.getAttribute('href');
    try { await probe.decode(); } catch (e) {}
    if (!(probe.naturalWidth > 0)) bad.push('svg image in ' + (el.closest('svg').getAttribute('aria-label') || '?'));
  }
  const t = performance.getEntriesByType('navigation')[0];
  return JSON.stringify({missing, bad, imgs: document.querySelectorAll('img').length,
                         load_ms: t ? t.loadEventStart - t.startTime : -1,
                         svgImages: svgImages.length, svgs: document.querySelectorAll('svg').length,
                         height: document.documentElement.scrollHeight});
})
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--sections", required=True, help="comma-separated element ids that must exist")
    ap.add_argument("--screenshot", required=True)
    a = ap.parse_args()
    url = "file://" + os.path.abspath(a.report)
    problems = []
    with tempfile.TemporaryDirectory() as profile:
        b = Browser(a.chromium, profile)
        try:
            target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Network", "Runtime", "Log"):
                b.send(domain + ".enable", session=session)
            b.send("Page.navigate", {"url": url}, session=session)
            b.wait_event("Page.loadEventFired")
            ids = a.sections.split(",")
            res = b.send("Runtime.evaluate", {"expression": CHECK_PAGE + "(%s)" % json.dumps(ids),
                                              "awaitPromise": True, "returnByValue": True}, session=session)
            page = json.loads(res["result"]["value"])
            problems += ["section #%s is missing" % s for s in page["missing"]]
            problems += ["%s does not decode" % s for s in page["bad"]]
            height = min(int(page["height"]), 16000)
            b.send("Emulation.setDeviceMetricsOverride",
                   {"width": 1200, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
            shot = b.send("Page.captureScreenshot", {"format": "png"}, session=session)
            with open(a.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            for e in b.events:
                m, p = e.get("method"), e.get("params", {})
                if m == "Network.requestWillBeSent":
                    req = p["request"]["url"]
                    if req != url and not req.startswith("data:"):
                        problems.append("request for " + req)
                elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    problems.append("console error: %s" % [x.get("value") for x in p.get("args", [])])
                elif m == "Runtime.exceptionThrown":
                    problems.append("exception: %s" % p["exceptionDetails"].get("text"))
                elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                    problems.append("browser log error: %s" % p["entry"].get("text"))
            print("report %s (%.1f MB): loaded in %.0f ms; %d sections, %d <img>, %d SVG images, %d SVG charts, "
                  "%d px high; screenshot %s" % (a.report, os.path.getsize(a.report) / 1e6, page["load_ms"],
                                                 len(ids), page["imgs"], page["svgImages"], page["svgs"],
                                                 page["height"], a.screenshot))
        finally:
            b.close()
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
