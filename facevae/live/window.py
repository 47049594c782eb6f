"""The live view's window, shown by a process of its own that imports OpenCV and numpy, never PyAV.

Why a process. The opencv-python and PyAV wheels both bundle libxcb-shm, libxcb-shape and libxcb-xfixes under the
same names (auditwheel names each copy by the hash of its source file), but PyAV's copies are linked against a
libxcb of PyAV's own, OpenCV's against the system's libxcb.so.1. The package imported first loads its copies, and
the dynamic linker then hands those to the other as well. With PyAV first, OpenCV's Qt window sends its requests
through PyAV's libxcb on a connection the system's libxcb opened, and waits for replies that never come:
`import av, cv2; cv2.namedWindow("x")` hangs for ever (PyAV-Org/PyAV#978, #1050). Importing cv2 first avoids it
only while every caller (a notebook, a test, any module imported earlier) keeps that order. A process that never
imports PyAV avoids it whatever the parent imported; it also keeps the GUI on a main thread, which macOS requires,
and a window system that aborts its process (Qt without a display) ends that process, not the run.

The parent writes each view to the child's stdin (a 12-byte header, then the BGR pixels); the child shows the
latest and answers on its stdout, one line per event: `key <code>` for a key pressed, `closed` when the window
was closed with its close button. Closing its stdin ends it. This module must import nothing that imports PyAV:
the child runs it as `python -m facevae.live.window`.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from typing import IO

import cv2
import numpy as np

log = logging.getLogger(__name__)

TITLE = "facevae live"
COMMAND = [sys.executable, "-m", "facevae.live.window"]  # the window process, given the title as its argument
HEADER = struct.Struct("<III")  # height, width, channels of the uint8 pixels that follow
CLOSE_TIMEOUT_S = 5.0
REASON = "facevae-window: "  # marks the window process's own one-line reason for ending, among Qt's warnings


# OpenCV's Qt window sometimes never paints and never returns from its first waitKey (Qt's timer for it does not
# fire; seen in about 1 of 15 starts under a load of 10 on 2 cores, in Xvfb). The window process says it is alive
# after each waitKey; one silent for STALL_S after its first view is replaced by a fresh one, at most RESTARTS times.
ALIVE_EVERY_S = 0.5
STALL_S = 8.0
RESTARTS = 3


class WindowError(RuntimeError):
    """The window process ended without being asked to (the window system refused it, it crashed) or kept stalling."""


class Window:
    """The view on screen, shown by the window process: `show` a view, then ask for the `keys` pressed since."""

    def __init__(self, title: str = TITLE) -> None:
        self.title = title
        self.closed = False  # by the user, with the window's close button
        self.restarts = 0
        self._child = _Child(title)

    def show(self, image: np.ndarray) -> None:
        """Send one BGR view; the window shows the latest it received."""
        if not self.closed:
            self._child.send(np.ascontiguousarray(image, np.uint8))

    def keys(self) -> list[int]:
        """The keys pressed since the last call (their low 8 bits, as `cv2.waitKey() & 0xFF`)."""
        child = self._child
        ended = child.ended()
        keys = []
        for kind, value in child.events():
            if kind == "key":
                keys.append(int(value))
            elif kind == "closed":
                self.closed = True
        if ended and not self.closed:
            raise WindowError(child.failure())
        if not self.closed and child.stalled():
            self._restart()
        return keys

    def close(self) -> None:
        """End the window process (it closes the window on its way out)."""
        self._child.close()

    def wait_shown(self, image: np.ndarray, timeout_s: float) -> bool:
        """Show `image` and wait until the window process has shown it (its first answer comes after its first
        waitKey) or `timeout_s` passed: a file then plays from its first frame in a window the user can see, however
        long the window system took to start. False when it did not answer in time."""
        self.show(image)
        deadline = time.monotonic() + timeout_s
        while not self._child.answered.wait(0.1):
            if self._child.ended():
                raise WindowError(self._child.failure())
            if time.monotonic() > deadline:
                return False
        return True

    def _restart(self) -> None:
        if self.restarts == RESTARTS:
            raise WindowError(f"the window stopped answering {RESTARTS + 1} times")
        log.warning("the window stopped answering for %g s: opening it again", STALL_S)
        self._child.kill()
        self._child = _Child(self.title)
        self.restarts += 1


class _Child:
    """One window process, and what it has said: events on stdout, Qt's warnings on stderr."""

    def __init__(self, title: str) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, title], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._events: queue.Queue[str] = queue.Queue()
        self._errors: deque[str] = deque(maxlen=20)
        self._heard: float | None = None  # when it last said it was alive; None until it was sent a view
        self.answered = threading.Event()  # it has said something: its window is up and running
        self._reader = _start(self._read_events, "facevae-window-events")
        _start(self._read_errors, "facevae-window-stderr")

    def send(self, image: np.ndarray) -> None:
        if self._heard is None:
            self._heard = time.monotonic()  # the stall clock starts with the first view
        try:
            self.process.stdin.write(HEADER.pack(*image.shape))
            self.process.stdin.write(image.data)
            self.process.stdin.flush()
        except OSError:  # the process has ended: Window.keys() says why
            pass

    def ended(self) -> bool:
        if self.process.poll() is None:
            return False
        self._reader.join()  # every event the process wrote is queued once its stdout has ended
        return True

    def events(self) -> list[tuple[str, str]]:
        events = []
        while not self._events.empty():
            kind, _, value = self._events.get_nowait().partition(" ")
            events.append((kind, value))
        return events

    def stalled(self) -> bool:
        return self._heard is not None and time.monotonic() - self._heard > STALL_S

    def failure(self) -> str:
        """Why it ended: its own one-line reason, else the first thing Qt said (no display...), or its status."""
        lines = [line for line in self._errors if line.strip()]
        own = [line.removeprefix(REASON) for line in lines if line.startswith(REASON)]
        return (own or lines or [f"exit status {self.process.returncode}"])[0]

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def _read_events(self) -> None:
        for line in self.process.stdout:
            self._heard = time.monotonic()
            self.answered.set()
            text = line.decode(errors="replace").strip()
            if text != "alive":
                self._events.put(text)

    def _read_errors(self) -> None:
        for line in self.process.stderr:  # Qt's warnings: kept for the error message, logged for debugging
            text = line.decode(errors="replace").rstrip()
            self._errors.append(text)
            log.debug("window: %s", text)


def _start(target, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True, name=name)
    thread.start()
    return thread


# -- the window process ---------------------------------------------------------------------------------------------


class _LatestView:
    """Reads views from a stream in a thread of its own and keeps only the latest: a slow screen drops frames
    rather than holding the run back."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._latest: np.ndarray | None = None
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self.ended = False
        _start(self._read, "facevae-window-views")

    def take(self, wait_s: float) -> np.ndarray | None:
        """The latest view not yet taken, waiting up to wait_s for one; None if there is none."""
        self._arrived.wait(wait_s)
        with self._lock:
            image, self._latest = self._latest, None
            self._arrived.clear()
        return image

    def _read(self) -> None:
        header = bytearray(HEADER.size)
        try:
            while _fill(self._stream, memoryview(header)):
                image = np.empty(HEADER.unpack(header), np.uint8)
                if not _fill(self._stream, memoryview(image).cast("B")):
                    break
                with self._lock:
                    self._latest = image
                self._arrived.set()
        finally:
            self.ended = True
            self._arrived.set()


def _fill(stream: IO[bytes], buffer: memoryview) -> bool:
    """Read exactly len(buffer) bytes; False at the end of the stream."""
    done = 0
    while done < len(buffer):
        n = stream.readinto(buffer[done:])
        if not n:
            return False
        done += n
    return True


def _run_window(title: str, events: IO[str]) -> None:
    """Show views until the parent closes the stream or the user closes the window; report keys as they come."""

    # Unbuffered: a buffered reader's lock, held by the reading thread, would stall the interpreter's exit.
    views = _LatestView(open(sys.stdin.fileno(), "rb", buffering=0, closefd=False))
    shown = False
    said_alive = 0.0
    while not views.ended:
        image = views.take(0.0 if shown else 0.1)
        if image is not None:
            if not shown:
                # GUI_NORMAL: the view alone, without the Qt toolbar and status bar, so the window is the view's size.
                cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
                shown = True
            cv2.imshow(title, image)
        if not shown:
            continue
        key = cv2.waitKey(5)  # also runs the window system's events
        if key != -1:
            events.write(f"key {key & 0xFF}\n")
        if time.monotonic() - said_alive > ALIVE_EVERY_S:
            events.write("alive\n")
            said_alive = time.monotonic()
        if not _visible(cv2, title):
            events.write("closed\n")
            return
    cv2.destroyAllWindows()


def _visible(cv2, title: str) -> bool:
    try:
        return cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1
    except cv2.error:  # Qt: its last window closed, the GUI thread's receiver is gone with it
        return False


def main() -> None:
    # Ctrl-C in a terminal reaches both processes: the parent finishes the run and then closes this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a library prints goes to stderr, not among the events
    try:
        _run_window(sys.argv[1] if len(sys.argv) > 1 else TITLE, events)
    except BrokenPipeError:
        pass  # the parent has gone: nobody is left to show anything to
    except Exception as err:  # noqa: BLE001 - the parent turns this line into its one-line error
        print(REASON + _reason(err), file=sys.stderr, flush=True)
        sys.exit(1)


def _reason(err: Exception) -> str:
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "not implemented" in message:  # cv2.error from a build without a GUI backend
        return "this OpenCV build cannot show windows (opencv-python-headless?): pip install opencv-python"
    return f"{type(err).__name__}: {message}"


if __name__ == "__main__":
    main()
