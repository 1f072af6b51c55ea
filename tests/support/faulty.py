"""A vendor that misbehaves below HTTP: it reads each request, then never answers
(``hang``) or resets the connection (``reset``). Real sockets on loopback, so the proxy's
upstream client meets the fault exactly as it would meet it from a broken vendor."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class FaultyVendor:
    def __init__(self, behaviour: str):
        assert behaviour in ("hang", "reset")
        self.behaviour = behaviour
        self.request_lines: list[str] = []  # one per request that reached it
        self._stop = threading.Event()
        self._held: list[socket.socket] = []

    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    conn.close()
                    return
                data += chunk
        except OSError:
            conn.close()
            return
        self.request_lines.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
        if self.behaviour == "reset":  # SO_LINGER 0: close() sends RST instead of FIN
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        else:
            self._held.append(conn)  # never answered; closed when the vendor stops

    def release(self) -> None:
        """Close the connections held so far (the calls on them fail); keep serving."""
        held, self._held = self._held, []
        for conn in held:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self.release()


@contextmanager
def faulty_vendor(behaviour: str) -> Iterator[tuple[str, FaultyVendor]]:
    """Yield (base URL, vendor) for a loopback server with the given fault."""
    listener = socket.create_server(("127.0.0.1", 0))
    vendor = FaultyVendor(behaviour)
    thread = threading.Thread(target=vendor.serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", vendor
    finally:
        vendor.stop()
        thread.join(5)
        listener.close()
