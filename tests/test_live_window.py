"""The live view in a real window: `python -m facevae.live` on a clip, shown by OpenCV's Qt backend in an X server;
and the window process's watchdog, with stand-ins that need no display.

Xvfb is the X server (Debian's `xvfb` package; `.ci/run` installs it). The test talks to it as a window manager and
a keyboard would, through python-xlib: it finds the window by its title, reads back what the window shows, types
keys with the XTEST extension (as a real keyboard's events arrive) and asks the window to close as a title bar's
close button does (WM_DELETE_WINDOW). Without Xvfb those tests are skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from Xlib import XK, X, display, protocol
from Xlib.error import XError
from Xlib.ext import xtest

from facevae.core.checkpoint import load_run
from facevae.live import window as window_module
from facevae.live.latent_map import load_latent_map
from facevae.live.view import BARS, CAMERA, MAP, VIEW_SIZE, LiveView
from facevae.live.window import TITLE, Window, WindowError

ROOT = Path(__file__).resolve().parents[1]
needs_x = pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("Xvfb") is None,
    reason="needs Linux and Xvfb (apt-get install xvfb; .ci/run installs it)",
)
STARTUP_S = 120  # generous: CI's two cores also run the test process; the target on a quiet machine is 10 s
RUN_S = 180


@pytest.fixture
def x_server() -> Iterator[str]:
    """A fresh Xvfb for each test, on a free display number, which it picks and reports itself (-displayfd): no
    window, focus or key state left over from another test."""
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    number = server.stdout.readline().strip()  # written once the server accepts connections
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(10)


class Screen:
    """The X server as the test sees it: windows by title, their pixels, keys, close requests."""

    def __init__(self, name: str) -> None:
        self.display = display.Display(name)

    def find(self, title: str):
        """The window with this title that a user would see: Qt may keep more than one X window of that name (a
        small one it made first, one it is replacing), so the largest of those mapped on screen."""
        pending, found = [self.display.screen().root], []
        while pending:
            window = pending.pop()
            try:
                if window.get_wm_name() == title and window.get_attributes().map_state == X.IsViewable:
                    geometry = window.get_geometry()
                    found.append((geometry.width * geometry.height, window))
                pending.extend(window.query_tree().children)
            except XError:
                continue  # a window that went away while the tree was read (Qt makes and drops helper windows)
        return max(found, key=lambda pair: pair[0])[1] if found else None

    def pixels(self, window) -> np.ndarray:
        """What the window shows, as BGR (the 24-bit screen's pixels are B, G, R, pad in memory)."""
        geometry = window.get_geometry()
        raw = window.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
        return np.frombuffer(raw.data, np.uint8).reshape(geometry.height, geometry.width, 4)[..., :3].copy()

    def press(self, window, key: str) -> None:
        window.set_input_focus(X.RevertToParent, X.CurrentTime)
        code = self.display.keysym_to_keycode(XK.string_to_keysym(key))
        xtest.fake_input(self.display, X.KeyPress, code)
        xtest.fake_input(self.display, X.KeyRelease, code)
        self.display.sync()

    def close_button(self, window) -> None:
        """What a window manager sends when the title bar's close button is clicked."""
        protocols = self.display.intern_atom("WM_PROTOCOLS")
        delete = self.display.intern_atom("WM_DELETE_WINDOW")
        event = protocol.event.ClientMessage(
            window=window, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0])
        )
        window.send_event(event)
        self.display.sync()


def start_live(x_display: str, ckpt: Path, clip: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "DISPLAY": x_display, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    env.pop("WAYLAND_DISPLAY", None)
    command = [sys.executable, "-m", "facevae.live", f"ckpt_path={ckpt}", f"source={clip}", "snapshot_dir=shots"]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(what: str, check, process: subprocess.Popen, timeout_s: float):
    """Poll check() until it returns something; fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the live view ended (status {process.returncode}) before {what}:\n{out}\n{err[-3000:]}")
        time.sleep(0.1)
    process.kill()
    out, err = process.communicate()
    pytest.fail(f"no {what} after {timeout_s} s:\n{out}\n{err[-3000:]}")


def click_close_until_it_ends(screen: Screen, window, process: subprocess.Popen, clicks: int = 10) -> None:
    """Click the close button, and again (as a user would) while the window stays: on a loaded machine a click can
    reach a window before Qt listens for it, or one Qt has just replaced. Each click goes to the window shown now."""
    for _ in range(clicks):
        try:
            screen.close_button(screen.find(TITLE) or window)
        except XError:
            pass  # the window went away between the lookup and the click: it is closing
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return
            time.sleep(0.1)


def showing_a_frame(screen: Screen):
    """The window and what it shows, once its camera panel holds a frame of the clip (not the empty panel).

    The window is looked up each time: Qt may replace the first X window it made for a new one, and a window that
    has gone (an X error) is simply not showing anything yet.
    """
    try:
        window = screen.find(TITLE)
        pixels = screen.pixels(window) if window is not None else None
    except XError:
        return None
    x, y, w, h = CAMERA
    return (window, pixels) if pixels is not None and pixels[y : y + h, x : x + w].std() > 20 else None


def static_mask() -> np.ndarray:
    """The view's pixels no frame draws over: titles, axis names, labels, margins."""
    mask = np.ones((VIEW_SIZE[1], VIEW_SIZE[0]), bool)
    x, y, w, h = CAMERA
    mask[y : y + h, x : x + w] = False
    mask[h:, : MAP[0] - 10] = False  # the crops, the "no face" note, the status lines
    mask[MAP[1] - 10 : MAP[1] + MAP[3] + 10, MAP[0] - 10 :] = False  # the trail's "no face" note may pass the edge
    x, y, w, h = BARS
    mask[y : y + h, x : x + w] = False
    return mask


def finish(process: subprocess.Popen) -> tuple[str, str]:
    try:
        return process.communicate(timeout=RUN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the live view did not finish within {RUN_S} s:\n{out}\n{err[-3000:]}")


@needs_x
def test_the_window_shows_the_view_s_saves_it_and_q_quits(x_server, live_checkpoint, long_clip, tmp_path):
    screen = Screen(x_server)
    started = time.monotonic()
    process = start_live(x_server, live_checkpoint, long_clip, tmp_path)
    try:
        window, shown = wait_for("a frame in a window", lambda: showing_a_frame(screen), process, STARTUP_S)
        opened_s = time.monotonic() - started
        assert shown.shape == (VIEW_SIZE[1], VIEW_SIZE[0], 3)
        screen.press(window, "s")
        shots = tmp_path / "shots"
        snapshot = wait_for("a snapshot", lambda: next(shots.glob("live-*.png"), None), process, 30)
        screen.press(window, "q")
        out, err = finish(process)
    finally:
        process.kill()
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in out + err
    assert str(Path("shots") / snapshot.name) in out.splitlines()
    frames = int(out.splitlines()[-2].split()[1].rstrip(","))
    assert 0 < frames < 12 * 30, "q should end the run before the clip does"
    # What the window showed is the view: exactly the view's background wherever no frame draws, as in the PNG.
    latent_map, _ = load_latent_map(load_run(live_checkpoint), "auto")  # the map the run cached beside the ckpt
    background = LiveView(latent_map, long_clip.name).background
    mask = static_mask()
    snapped = cv2.imread(str(snapshot))
    assert snapped.shape == shown.shape
    assert (shown[mask] == background[mask]).all(axis=-1).mean() > 0.999
    assert (snapped[mask] == background[mask]).all(axis=-1).mean() > 0.999
    assert not list(shots.glob(".*")), "a temporary was left beside the snapshot"
    print(f"window with the first frame {opened_s:.1f} s after the command started")


@needs_x
def test_the_close_button_ends_the_run_cleanly(x_server, live_checkpoint, long_clip, tmp_path):
    screen = Screen(x_server)
    process = start_live(x_server, live_checkpoint, long_clip, tmp_path)
    try:
        # A user clicks on a window they see: one that is mapped and shows a frame.
        window, _ = wait_for("a frame in a window", lambda: showing_a_frame(screen), process, STARTUP_S)
        click_close_until_it_ends(screen, window, process)
        out, err = finish(process)
    finally:
        process.kill()
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in out + err
    assert "the window was closed: finishing" in out
    assert out.splitlines()[-2].startswith("frames ")


# A window process that reads the views and never answers, as OpenCV's window does when it stalls; and one that says
# it is alive every 0.1 s and ends with its input, as a working one does.
SILENT = "import sys; sys.stdin.buffer.read()"
ALIVE = """
import os, sys, threading, time
threading.Thread(target=lambda: (sys.stdin.buffer.read(), os._exit(0)), daemon=True).start()
while True:
    print("alive", flush=True)
    time.sleep(0.1)
"""


def show_for(window: Window, seconds: float) -> None:
    view = np.zeros((8, 8, 3), np.uint8)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        window.show(view)
        window.keys()
        time.sleep(0.02)


def test_a_window_that_stops_answering_is_opened_again_then_given_up(monkeypatch, caplog):
    monkeypatch.setattr(window_module, "COMMAND", [sys.executable, "-c", SILENT])
    monkeypatch.setattr(window_module, "STALL_S", 0.5)
    monkeypatch.setattr(window_module, "RESTARTS", 1)
    window = Window()
    first = window._child.process
    with pytest.raises(WindowError, match="^the window stopped answering 2 times$"):
        show_for(window, 30)
    assert window.restarts == 1 and first.returncode is not None  # the stalled one was ended, not left behind
    assert caplog.text.count("the window stopped answering for 0.5 s: opening it again") == 1
    window.close()


def test_a_window_that_answers_is_kept(monkeypatch):
    monkeypatch.setattr(window_module, "COMMAND", [sys.executable, "-c", ALIVE])
    monkeypatch.setattr(window_module, "STALL_S", 0.5)
    window = Window()
    show_for(window, 2)
    assert window.restarts == 0 and not window.closed
    started = time.monotonic()
    window.close()
    assert window._child.process.returncode == 0 and time.monotonic() - started < 3  # it ended with its input


def test_the_first_frame_waits_for_a_window_that_answers_and_not_for_one_that_never_does(monkeypatch):
    view = np.zeros((8, 8, 3), np.uint8)
    monkeypatch.setattr(window_module, "COMMAND", [sys.executable, "-c", ALIVE])
    window = Window()
    assert window.wait_shown(view, timeout_s=30)
    window.close()
    monkeypatch.setattr(window_module, "COMMAND", [sys.executable, "-c", SILENT])
    window = Window()
    started = time.monotonic()
    assert not window.wait_shown(view, timeout_s=1.0) and time.monotonic() - started < 5
    window.close()
