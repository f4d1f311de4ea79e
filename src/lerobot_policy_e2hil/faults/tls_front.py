"""The TLS learner's public port: plaintext connections are refused and counted, TLS ones relayed.

gRPC Python fails a plaintext client's handshake inside its C core and tells no Python code, so
the learner could neither count nor name a plaintext actor. With TLS on, :class:`TlsFront`
listens on the learner's address instead of gRPC: it peeks at the first byte of each connection
(a TLS record starts with 0x16, the handshake type; a plaintext HTTP/2 client starts with the
preface ``PRI * HTTP/2.0``), closes and reports every connection that does not start a TLS
handshake, and relays the others, bytes unchanged, to the gRPC server bound on a loopback
ephemeral port. TLS still ends in gRPC: the front reads no plaintext and holds no key.

Every thread is a daemon; :meth:`TlsFront.stop` closes the listener and every open socket, which
ends them; a connection that sends nothing is closed after ``first_bytes_timeout_s``.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from collections.abc import Callable

TLS_HANDSHAKE_RECORD = 0x16
BACKEND_HOST = "127.0.0.1"
RELAY_BUFFER = 1 << 16
POLL_S = 1.0


def starts_tls(first: bytes) -> bool:
    """Whether a connection's first byte opens a TLS handshake record."""
    return bool(first) and first[0] == TLS_HANDSHAKE_RECORD


def peer_name(address: tuple) -> str:
    """A socket address the way gRPC names peers: ``ipv4:10.0.0.7:51234``, ``ipv6:[::1]:51234``."""
    host, port = address[0], address[1]
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (IPv4 preferred for a name that has both)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = sorted(infos, key=lambda info: info[0] != socket.AF_INET)[0]
    dualstack = family == socket.AF_INET6 and address[0] == "::" and socket.has_dualstack_ipv6()
    return socket.create_server(address[:2], family=family, backlog=128, dualstack_ipv6=dualstack)


class TlsFront:
    """Listens on the learner's public address; relays TLS to ``backend_port``, refuses the rest.

    Args:
        host: The learner's host (as in ``--policy.actor_learner_config.learner_host``).
        port: Its port; 0 picks a free one (:attr:`port`).
        on_refused: Called with (peer, reason) for each refused connection.
        first_bytes_timeout_s: A connection that sends nothing for this long is closed, uncounted.
    """

    def __init__(
        self,
        host: str,
        port: int,
        on_refused: Callable[[str, str], None],
        first_bytes_timeout_s: float = 10.0,
    ):
        self._listener = _listen(host, port)
        self._listener.settimeout(POLL_S)  # accept() wakes up to see stop()
        self.port = self._listener.getsockname()[1]
        self._on_refused = on_refused
        self._first_bytes_timeout_s = first_bytes_timeout_s
        self._backend_port: int | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._relayed: dict[int, str] = {}
        self._acceptor: threading.Thread | None = None

    def start(self, backend_port: int) -> None:
        """Accept connections (in a daemon thread) and relay TLS ones to ``127.0.0.1:backend_port``."""
        self._backend_port = backend_port
        self._acceptor = threading.Thread(target=self._accept, name="e2hil-tls-front", daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """Stop accepting and close every open connection (their threads then end)."""
        self._stopping.set()
        _close(self._listener)
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            _close(sock)
        if self._acceptor is not None and self._acceptor is not threading.current_thread():
            self._acceptor.join(timeout=5)

    def real_peer(self, peer: str) -> str | None:
        """The actor behind a relayed connection, from the peer name gRPC sees; None if not relayed."""
        prefix = f"ipv4:{BACKEND_HOST}:"
        if not peer.startswith(prefix) or not peer[len(prefix) :].isdigit():
            return None
        with self._lock:
            return self._relayed.get(int(peer[len(prefix) :]))

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopping.is_set():
                return False
            self._open.add(sock)
            return True

    def _untrack(self, *sockets: socket.socket | None) -> None:
        with self._lock:
            for sock in sockets:
                if sock is not None:
                    self._open.discard(sock)
        for sock in sockets:
            if sock is not None:
                _close(sock)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed: stopping
                return
            connection.settimeout(None)
            if not self._track(connection):
                _close(connection)
                return
            threading.Thread(
                target=self._serve, args=(connection, address), name="e2hil-tls-relay", daemon=True
            ).start()

    def _serve(self, connection: socket.socket, address: tuple) -> None:
        peer, backend, local_port = peer_name(address), None, None
        try:
            connection.settimeout(self._first_bytes_timeout_s)
            first = connection.recv(1, socket.MSG_PEEK)
            if not first:
                return
            if not starts_tls(first):
                self._on_refused(peer, "plaintext")
                return
            connection.settimeout(None)
            backend = socket.create_connection((BACKEND_HOST, self._backend_port), timeout=10)
            backend.settimeout(None)
            if not self._track(backend):
                return
            local_port = backend.getsockname()[1]
            with self._lock:
                self._relayed[local_port] = peer
            _relay(connection, backend, self._stopping)
        except (OSError, ValueError) as err:  # ValueError: a socket closed by stop() while selected
            logging.debug(f"[LEARNER] TLS front: connection from {peer} ended ({err})")
        finally:
            if local_port is not None:
                with self._lock:
                    self._relayed.pop(local_port, None)
            self._untrack(connection, backend)


def _relay(a: socket.socket, b: socket.socket, stopping: threading.Event) -> None:
    """Copy bytes both ways until either side closes or ``stopping`` is set.

    A selector (epoll on Linux), not ``select.select``: the learner process may hold more than
    1024 file descriptors.
    """
    other = {a: b, b: a}
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ)
        selector.register(b, selectors.EVENT_READ)
        while not stopping.is_set():
            for key, _ in selector.select(POLL_S):
                data = key.fileobj.recv(RELAY_BUFFER)
                if not data:
                    return
                other[key.fileobj].sendall(data)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
