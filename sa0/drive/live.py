"""The live link: the newest posed frame, served to the browser viewer over a WebSocket.

`FrameHub` holds only the newest frame (a producer thread publishes, frames it replaces before a
page took them are dropped: a slow page always gets the present, never a queue). `LiveServer` serves
the viewer folder and `/live` on 127.0.0.1 (aiohttp, in its own thread). Per connection the page
says `{"ready": true}`, and after posing each frame `{"posed": k}`; each of those is answered with
the newest frame it has not had, so one frame is in flight per page. A frame is a binary message:
uint32 frame index, float32 the server's median latency so far (ms), uint32 vertex count V, uint32
0, then V x 3 float32 world positions (sa0's world, as motion.bin's). When the source ends the
page gets the JSON `{"end": true, ...}`. Latency of frame k: from its read (before detection) to
the page's `posed` for it, on the server's clock. The hello may list `controls` (sliders: name,
min, max); the page then sends `{"set": {name: value}}` as one moves, which the server poses
(`on_set`) and publishes as the next frame.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class HubStats:
    """produced: frames published; sent / posed: frame indices sent to and posed by pages; latency_ms:
    per posed frame; read_at / published_at / sent_at: index -> when it was read / published / sent to
    a page (perf_counter seconds);
    in_flight_ms: per posed frame, from its sending to the page's `posed` (the page's share of the latency)."""

    produced: int = 0
    sent: list[int] = field(default_factory=list)
    posed: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    read_at: dict[int, float] = field(default_factory=dict)
    published_at: dict[int, float] = field(default_factory=dict)
    sent_at: dict[int, float] = field(default_factory=dict)
    in_flight_ms: list[float] = field(default_factory=list)


class FrameHub:
    """Thread-safe newest-frame slot; waiters are woken in the server's event loop."""

    def __init__(self):
        self._lock = threading.Lock()
        self._newest: tuple[int, bytes] | None = None
        self._ended = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self.stats = HubStats()
        self.page = threading.Event()  # set when a page first connects

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._changed = loop, asyncio.Event()

    def _wake(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._changed.set)

    def publish_next(self, read_at: float, verts: np.ndarray) -> int:
        """Publish as the frame after the newest (the sliders' poses); -> its index."""
        with self._lock:
            index = self._newest[0] + 1 if self._newest is not None else 0
        self.publish(index, read_at, verts)
        return index

    def publish(self, index: int, read_at: float, verts: np.ndarray) -> None:
        verts = np.ascontiguousarray(verts, np.float32)
        with self._lock:
            self._newest = (index, verts.tobytes())
            self.stats.produced += 1
            self.stats.read_at[index] = read_at
            self.stats.published_at[index] = time.perf_counter()
        self._wake()

    def end(self) -> None:
        with self._lock:
            self._ended = True
        self._wake()

    def posed(self, index: int) -> None:
        with self._lock:
            read, now = self.stats.read_at.get(index), time.perf_counter()
            if read is not None and index not in self.stats.posed:
                self.stats.posed.append(index)
                self.stats.latency_ms.append((now - read) * 1000)
                self.stats.in_flight_ms.append((now - self.stats.sent_at.get(index, now)) * 1000)

    def median_latency(self) -> float:
        with self._lock:
            return float(np.median(self.stats.latency_ms)) if self.stats.latency_ms else float("nan")

    async def next_after(self, last: int) -> tuple[int, bytes] | None:
        """The newest frame with index > last; None once the source has ended and none is newer."""
        while True:
            with self._lock:
                if self._newest is not None and self._newest[0] > last:
                    return self._newest
                if self._ended:
                    return None
                self._changed.clear()
            await self._changed.wait()


def frame_message(index: int, payload: bytes, latency_ms: float) -> bytes:
    return struct.pack("<IfII", index, latency_ms, len(payload) // 12, 0) + payload


class LiveServer:
    """Serves `site` (the viewer folder) and `/live` at http://127.0.0.1:port in a background thread.
    port 0 picks a free one (see `.port` after start)."""

    def __init__(self, site, hub: FrameHub, port: int = 0, hello: dict | None = None, on_set=None):
        self.site, self.hub, self.port, self.hello = Path(site), hub, port, hello or {}
        self.on_set = on_set  # the page's sliders: {"set": {name: value}} -> on_set(values), which publishes
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _live(self, request):
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.send_str(json.dumps({"hello": True, **self.hello}))
        self.hub.page.set()
        last = -1
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            said = json.loads(msg.data)
            if "set" in said and self.on_set is not None:  # a slider moved: pose it off the event loop
                await asyncio.get_running_loop().run_in_executor(None, self.on_set, dict(said["set"]))
            if "posed" in said:
                self.hub.posed(int(said["posed"]))
            frame = await self.hub.next_after(last)
            if ws.closed:  # the page went while this waited (it reconnects on a new socket)
                break
            try:
                if frame is None:
                    await ws.send_str(json.dumps({"end": True, "posed": len(self.hub.stats.posed)}))
                    continue
                last = frame[0]
                self.hub.stats.sent.append(last)
                self.hub.stats.sent_at[last] = time.perf_counter()
                await ws.send_bytes(frame_message(last, frame[1], self.hub.median_latency()))
            except ConnectionError:
                break
        return ws

    async def _main(self):
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self.hub.attach(self._loop)
        app = web.Application()
        app.router.add_get("/live", self._live)
        app.router.add_get("/", lambda _: web.FileResponse(self.site / "index.html"))
        app.router.add_static("/", self.site)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._stop = asyncio.Event()
        self._started.set()
        await self._stop.wait()
        await runner.cleanup()

    def _run(self):
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._started.set()

    def start(self) -> "LiveServer":
        self._thread = threading.Thread(target=self._run, name="sa0-live", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise OSError(f"live server on 127.0.0.1:{self.port} could not start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
