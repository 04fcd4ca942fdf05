"""TLS over the completion engine: an ``ssl.SSLObject`` between two memory BIOs per
connection, so the engine still moves the bytes and OpenSSL only encrypts and decrypts.

    engine recv  -> ciphertext -> incoming BIO -> SSLObject.read  -> plaintext -> codec
    codec bytes  -> SSLObject.write -> outgoing BIO -> ciphertext -> engine send

``TlsLayer`` is what a client (``loadgen.load.tls_clients``) plugs between its connection
slots and the engine; it works the same on every backend and in every receive mode, since it
only sees the bytes the receive mechanics hand over and the completions of its own sends:

* ``start`` after the TCP connect: a fresh ``SSLObject`` (resuming the slot's last session
  when ``session_resumption`` is on) writes its ClientHello; each batch of ciphertext that
  arrives (``received``) drives the handshake on until it completes, then the client is told
  (``ready``) and may send. The handshake's time, from the TCP connect completing to the
  handshake completing, goes to the recorder's ``tls_handshake`` histogram, and a resumed
  session to ``tls_resumed``.
* ``send`` is the client's send function over TLS (same signature as the engine's): the
  plaintext is encrypted into the outgoing BIO and the ciphertext sent. One send per socket
  is in flight at a time (the engine's rule): what is written meanwhile waits in the BIO and
  goes when the send completes (``wire_sent``). When everything written has left, ``sent``
  tells the client how many plaintext bytes that was (a stream counts its payload so).
* ``received`` decrypts what arrived into one plaintext buffer shared by the client's
  connections and hands each piece to the client's ``consume``, as the plain path hands
  received bytes. A close_notify from the server reads as the end of the connection
  (``eof``); a TLS failure (a failed certificate check, an alert, bytes that are not TLS) is
  the error kind ``tls`` with OpenSSL's reason kept (``Summary.error_reasons``).

Per request the layer makes one ``write`` (one record) and one ``read`` per record that
arrived (into the shared buffer, at most 16 KiB: a whole record), both on the C object under
the ``SSLObject`` (``_cipher``); the ciphertext goes from the slot's own send buffer, filled
in place, as a quiet send (the engine reports only its failure: ``Backend.send_quiet``) when
the request client sends it; a small receive reaches the incoming BIO as one copy of its
bytes; no exception is raised unless a record is still incomplete (``received``).

A connection closed in order (FIN) sends its close_notify first (``close_notify``: one send
just before the socket closes, the server's reply not waited for); one that is reset (an
error, ``close: rst``) ends without it. The session stays resumable either way.
The branch to TLS is taken once, when the client is made: a plain run runs none of this.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast

from loadgen.config.tls import no_passphrase
from loadgen.engine import Backend
from loadgen.engine.base import Buffer
from loadgen.load.recorder import Recorder
from loadgen.load.tokens import INDEX_SHIFT, OP_SEND

#: The error kind of a failed handshake or of a TLS failure on an open connection.
KIND_TLS = "tls"
#: One TLS record holds at most 16 KiB of plaintext (RFC 8446 5.1), and a read returns at
#: most one record: a buffer this size takes any record whole.
PLAINTEXT_BYTES = 16 * 1024
#: A receive shorter than this reaches the incoming BIO as a copy of its bytes, longer ones
#: through a view: a small copy costs less than the two memoryview objects a view takes
#: (0.13 against 0.25 us for a 400-byte response, and the garbage collector tracks views).
COPY_RECEIVED_BELOW = 4096
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
#: OpenSSL's messages end with where in CPython's _ssl.c they were raised: not a reason.
_SOURCE_LINE = re.compile(r"\s*\(_ssl\.c:\d+\)$")


@dataclass(frozen=True)
class TlsConfig:
    """The scenario's ``tls:`` section as a client uses it (``loadgen.run.wiring``)."""

    #: SNI and the name the certificate must carry, per target: connection i talks to
    #: target ``i % len(server_names)``.
    server_names: Sequence[str]
    verify: bool = True
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    alpn: tuple[str, ...] = ()  # ("http/1.1",) for HTTP
    min_version: str = "1.2"
    session_resumption: bool = True
    #: From the TCP connect completing; a handshake still going then is a timeout.
    handshake_timeout_s: float = 5.0


def client_context(config: TlsConfig) -> ssl.SSLContext:
    """The one client context of a shard: verification, CAs, client certificate, ALPN and
    minimum version as configured. ``ssl.SSLError``/``OSError`` for unusable files (the
    scenario check reads them first: ``loadgen.config.tls.check_tls``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname check, CERT_REQUIRED
    context.minimum_version = _VERSIONS[config.min_version]
    if config.verify:
        if config.ca_file is not None:
            context.load_verify_locations(cafile=config.ca_file)
        else:
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.client_cert is not None:
        context.load_cert_chain(config.client_cert, config.client_key, password=no_passphrase)
    if config.alpn:
        context.set_alpn_protocols(list(config.alpn))
    return context


def failure_reason(exc: ssl.SSLError) -> str:
    """What went wrong, in OpenSSL's words: ``certificate verify failed: unable to get
    local issuer certificate``, ``[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
    return _SOURCE_LINE.sub("", text) or type(exc).__name__


def _ageing(session: ssl.SSLSession) -> bool:
    """True past half the session's lifetime (``timeout``: the server's ticket lifetime or
    session timeout, seconds from ``time``), so it is replaced well before it expires."""
    return time.time() - session.time > session.timeout / 2


class _Cipher(Protocol):
    """What the hot path calls on a connection's TLS object: ``ssl.SSLObject``'s read and
    write, or the same methods of the C object it wraps (``_cipher``)."""

    def read(self, size: int, buffer: bytearray, /) -> int: ...

    def write(self, data: Buffer | bytes, /) -> int: ...


def _cipher(tls: ssl.SSLObject) -> _Cipher:
    """The C object under ``tls`` (CPython's ``_ssl._SSLSocket``, its ``_sslobj``), whose
    ``read``/``write`` the ``SSLObject`` methods only forward to: called directly they save
    a Python frame per call, two per request. Any other ``ssl`` (no such attribute) gets
    ``tls`` itself, which has the same two methods."""
    return cast("_Cipher", getattr(tls, "_sslobj", tls))


class TlsChannel:
    """One connection's TLS state: the SSLObject, its BIOs, and the ciphertext in flight."""

    __slots__ = (
        "handshaking",
        "incoming",
        "outgoing",
        "plain_pending",
        "read",
        "sending",
        "ssl",
        "started_ns",
        "wire",
        "wire_sent",
        "write",
    )

    def __init__(
        self,
        context: ssl.SSLContext,
        server_name: str,
        session: ssl.SSLSession | None,
        now_ns: int,
    ) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(
            self.incoming, self.outgoing, server_hostname=server_name, session=session
        )
        cipher = _cipher(self.ssl)
        #: ``read(size, buffer) -> count`` and ``write(data) -> count``, bound once.
        self.read: Callable[[int, bytearray], int] = cipher.read
        self.write: Callable[[Buffer | bytes], int] = cipher.write
        self.handshaking = True
        self.started_ns = now_ns  # the TCP connect's completion
        self.wire: bytearray | memoryview = bytearray()  # the ciphertext being sent
        self.wire_sent = 0
        self.sending = False
        self.plain_pending = 0  # plaintext written since everything had last left


class TlsSlot(Protocol):
    """What the TLS layer reads of a connection slot (``loadgen.load.pool.Slot``)."""

    index: int
    handle: int
    token_base: int


C = TypeVar("C", bound=TlsSlot)
C_contra = TypeVar("C_contra", bound=TlsSlot, contravariant=True)


class Fail(Protocol[C_contra]):
    """The client's ``_fail``: count an error of ``kind`` with its ``reason``, drop the
    connection (``loadgen.load.pool.SlotPool._fail``)."""

    def __call__(self, conn: C_contra, kind: str, now_ns: int, *, reason: str) -> None: ...


class TlsLayer(Generic[C]):
    """TLS for one client's ``slots`` connection slots (by index). The client's callbacks:

    * ``ready(conn, now_ns)``: the handshake completed; the connection may send;
    * ``consume(conn, data, n, now_ns) -> bool``: plaintext arrived, as the receive
      mechanics' ``consume`` (True while the connection wants to go on receiving);
    * ``sent(conn, n, now_ns)``: ``n`` plaintext bytes written have all left (None: the
      client needs no word of it);

    With ``count_bytes`` the layer counts the plaintext in the recorder's ``bytes_sent``
    (as it is written) and ``bytes_received`` (as it is read); otherwise the client counts
    what it wants to (a stream: its payload).
    * ``eof(conn, now_ns)``: the server ended the TLS session (close_notify);
    * ``fail(conn, kind, now_ns, reason=...)``: count an error and drop the connection.
    """

    def __init__(
        self,
        engine: Backend,
        config: TlsConfig,
        slots: int,
        recorder: Recorder,
        *,
        ready: Callable[[C, int], None],
        consume: Callable[[C, Buffer | bytes, int, int], bool],
        sent: Callable[[C, int, int], None] | None,
        eof: Callable[[C, int], None],
        fail: Fail[C],
        count_bytes: bool = False,
    ) -> None:
        self.engine = engine
        self.context = client_context(config)
        self._server_names = list(config.server_names)
        self._resume = config.session_resumption
        self.handshake_timeout_ns = int(config.handshake_timeout_s * 1e9)
        self._recorder = recorder
        self._ready = ready
        self._consume = consume
        self._sent = sent
        self._eof = eof
        self._fail = fail
        self._count_bytes = count_bytes
        #: The client's send function over TLS (the engine's signature).
        self.send_function: Callable[[int, Buffer | bytes, int], None] = (
            self._send_counted if count_bytes and sent is None else self.send
        )
        self.channels: list[TlsChannel | None] = [None] * slots
        #: The last session of each slot, resumed by its next connection.
        self._sessions: list[ssl.SSLSession | None] = [None] * slots
        self._plain = bytearray(PLAINTEXT_BYTES)
        #: Each slot's send buffer, and the size of its last one-off send (``_send_wire``).
        self._wires = [bytearray() for _ in range(slots)]
        self._last_sizes = [0] * slots
        self.handshaking = 0  # channels whose handshake is in progress

    # --- a connection's life -----------------------------------------------------------
    def start(self, conn: C, now_ns: int) -> None:
        """The TCP connect completed (and the receive is posted): begin the handshake."""
        index = conn.index
        server_name = self._server_names[index % len(self._server_names)]
        session = self._sessions[index] if self._resume else None
        channel = TlsChannel(self.context, server_name, session, now_ns)
        self.channels[index] = channel
        self.handshaking += 1
        self._handshake(conn, channel, now_ns)

    def close(self, conn: C) -> None:
        """``conn``'s socket is gone: keep its session for the slot's next connection.

        Reading a session costs ~0.3 ms (CPython hands out a copy: the session encoded and
        decoded again, its certificates with it), so a slot keeps the session it resumed
        with, and takes a fresh one only when the server did not resume (it refused the
        old one, or this was the first) or the kept one is past half its lifetime."""
        index = conn.index
        channel = self.channels[index]
        if channel is None:
            return
        self.channels[index] = None
        if channel.handshaking:
            self.handshaking -= 1
            return
        if not self._resume:
            return
        kept = self._sessions[index]
        if kept is None or not channel.ssl.session_reused or _ageing(kept):
            session = channel.ssl.session
            if session is not None:
                self._sessions[index] = session

    def last_send_done(self, conn: C, result: int) -> None:
        """A send completion reaped just before the last close (``result`` >= 0 bytes):
        when it finished the ciphertext in flight, nothing holds ``close_notify`` back
        (what was written meanwhile goes with the alert). Nothing else is sent, and the
        client hears of nothing: its run is over."""
        channel = self.channels[conn.index]
        if channel is not None and channel.wire_sent + result >= len(channel.wire):
            channel.sending = False

    def close_notify(self, conn: C) -> None:
        """``conn`` is about to be closed in order (FIN, not RST): send its close_notify
        first, so the server sees the session ended, not cut. Bounded: the alert is handed
        to the engine once, just before the socket closes, and the server's own
        close_notify is not waited for (RFC 8446 6.1 lets a client close without it). A
        send still in flight (the engine's one per socket) or a handshake in progress
        has nothing to close in order: no alert then."""
        channel = self.channels[conn.index]
        if channel is None or channel.handshaking or channel.sending:
            return
        # Writes the alert, then "wants to read" the server's reply (SSLWantReadError).
        with contextlib.suppress(ssl.SSLError):
            channel.ssl.unwrap()
        alert = channel.outgoing.read()
        if alert:
            channel.sending = True
            self.engine.send(conn.handle, alert, conn.token_base | OP_SEND)

    def in_handshake(self, conn: C) -> bool:
        channel = self.channels[conn.index]
        return channel is not None and channel.handshaking

    def handshake_overdue(self, conn: C, now_ns: int) -> bool:
        """True when ``conn``'s handshake has run past its timeout."""
        channel = self.channels[conn.index]
        return (
            channel is not None
            and channel.handshaking
            and now_ns - channel.started_ns > self.handshake_timeout_ns
        )

    # --- sending -----------------------------------------------------------------------
    def send(self, handle: int, data: Buffer | bytes, token: int) -> None:
        """The client's send over TLS: encrypt ``data`` and send the ciphertext (now, or
        after the send in flight). ``token`` names the slot, as for the engine's send.

        One ``write`` per call (one record), and when nothing is in flight the ciphertext
        goes at once from the slot's own buffer (``_send_wire`` says when it can't).
        ``send_function`` is this, or its copy for the request client (``_send_counted``)."""
        index = token >> INDEX_SHIFT
        channel = self.channels[index]
        if channel is None or channel.handshaking:
            raise RuntimeError("a send over TLS before the handshake completed")
        written = channel.write(data)
        if self._count_bytes:
            self._recorder.bytes_sent += written
        if self._sent is not None:
            channel.plain_pending += written
        if channel.sending:
            return  # it goes when the send in flight completes (``wire_sent``)
        ciphertext = channel.outgoing.read()
        wire = self._wires[index]
        if len(wire) == len(ciphertext):  # the common case: a request of the usual size
            wire[:] = ciphertext
            channel.wire = wire
            channel.wire_sent = 0
            channel.sending = True
            self.engine.send(handle, wire, token)
        else:
            self._send_wire(channel, index, handle, token, ciphertext)

    def _send_counted(self, handle: int, data: Buffer | bytes, token: int) -> None:
        """``send`` for a client that counts bytes here and wants no ``sent``: the same
        steps without the two tests, once per request (the clients call it only when the
        handshake is done, ``send`` checks that)."""
        index = token >> INDEX_SHIFT
        channel = self.channels[index]
        assert channel is not None
        self._recorder.bytes_sent += channel.write(data)
        if channel.sending:
            return
        ciphertext = channel.outgoing.read()
        wire = self._wires[index]
        if len(wire) == len(ciphertext):
            wire[:] = ciphertext
            channel.wire = wire
            channel.wire_sent = 0
            # Quiet (only a failure completes): the request client sends its next request
            # after this one's response, which proves these bytes left, so nothing else is
            # sent on the socket meanwhile and the buffer is free to refill by then.
            self.engine.send_quiet(handle, wire, token)
        else:
            self._send_wire(channel, index, handle, token, ciphertext)

    def wire_sent(self, conn: C, result: int, now_ns: int) -> None:
        """A send of ciphertext completed with ``result`` bytes (>= 0)."""
        channel = self.channels[conn.index]
        if channel is None:
            return
        sent = channel.wire_sent + result
        wire = channel.wire
        if sent < len(wire):  # a partial send: the rest now
            channel.wire_sent = sent
            rest = memoryview(wire)[sent:]
            self.engine.send(conn.handle, rest, conn.token_base | OP_SEND)
        elif channel.outgoing.pending:
            self._send_wire(
                channel, conn.index, conn.handle, conn.token_base | OP_SEND
            )  # written while this send was in flight
        else:
            channel.sending = False
            if self._sent is not None and channel.plain_pending:
                written, channel.plain_pending = channel.plain_pending, 0
                self._sent(conn, written, now_ns)

    def _send_wire(
        self,
        channel: TlsChannel,
        index: int,
        handle: int,
        token: int,
        ciphertext: bytes | None = None,
    ) -> None:
        """Send ``ciphertext`` (default: what waits in the outgoing BIO) on slot ``index``'s
        socket ``handle`` with ``token`` (its send token); nothing else is in flight there.

        The engines pin a buffer object once and keep it (io_uring caches what it is
        given, by object), so a slot sends from a buffer of its own, filled in place, when
        the ciphertext has the size that slot sent last time: a fixed request (or a stream's
        segment) encrypts to the same size every time (``send`` takes that case inline).
        Other sizes (handshake flights, a size seen once) go from a one-off view, which the
        engines pin per send and keep none of. (A send of the slot's previous socket may
        still be pending when the next socket fills the buffer: that socket was closed,
        whatever it still sends is cut.)"""
        data = channel.outgoing.read() if ciphertext is None else ciphertext
        n = len(data)
        if not n:
            channel.sending = False
            return
        wire = self._wires[index]
        if len(wire) == n:
            wire[:] = data  # the same size: no resize, so allowed while the engine pins it
            channel.wire = wire
        elif n == self._last_sizes[index]:
            channel.wire = self._wires[index] = bytearray(data)  # this size repeats
        else:
            self._last_sizes[index] = n
            channel.wire = memoryview(bytearray(data))
        channel.wire_sent = 0
        channel.sending = True
        self.engine.send(handle, channel.wire, token)

    # --- receiving ---------------------------------------------------------------------
    def received(self, conn: C, data: Buffer | bytes, n: int, now_ns: int) -> bool:
        """``n`` bytes of ciphertext arrived on ``conn``: drive the handshake, or decrypt
        and hand the plaintext to the client. True while the connection wants to go on
        receiving (False: it failed, finished, or was closed meanwhile)."""
        channel = self.channels[conn.index]
        if channel is None:
            return False
        incoming = channel.incoming
        if len(data) == n:
            incoming.write(data)
        elif n < COPY_RECEIVED_BELOW:
            incoming.write(data[:n])
        else:
            incoming.write(memoryview(data)[:n])
        if channel.handshaking:
            if not self._handshake(conn, channel, now_ns):
                return False
            if self.channels[conn.index] is not channel:
                return False  # the client closed it when it became ready
            if self.in_handshake(conn):
                return True  # more of the server's flight to come
        read = channel.read
        plain = self._plain
        consume = self._consume
        while True:
            try:
                got = read(PLAINTEXT_BYTES, plain)
            except ssl.SSLWantReadError:
                break  # the rest of a record is still on its way
            except ssl.SSLZeroReturnError:
                got = 0
            except ssl.SSLError as exc:
                self._fail(conn, KIND_TLS, now_ns, reason=failure_reason(exc))
                return False
            if not got:  # the server's close_notify: the session ended
                self._eof(conn, now_ns)
                return False
            if self._count_bytes:
                self._recorder.bytes_received += got
            if not consume(conn, plain, got, now_ns):
                return False
            if got < PLAINTEXT_BYTES and not incoming.pending:
                # A read returns one record's plaintext: a short one took the record whole,
                # and no ciphertext is left, so skip the read that would only "want read".
                break
        # Reading may have answered the server (a key update) with something to send.
        if not channel.sending and channel.outgoing.pending:
            self._send_wire(channel, conn.index, conn.handle, conn.token_base | OP_SEND)
        return True

    def _handshake(self, conn: C, channel: TlsChannel, now_ns: int) -> bool:
        """One step of the handshake; False when it failed (the connection is dropped)."""
        try:
            channel.ssl.do_handshake()
        except ssl.SSLWantReadError:
            if channel.outgoing.pending and not channel.sending:
                self._send_wire(channel, conn.index, conn.handle, conn.token_base | OP_SEND)
            return True
        except ssl.SSLError as exc:
            self._fail(conn, KIND_TLS, now_ns, reason=failure_reason(exc))
            return False
        channel.handshaking = False
        self.handshaking -= 1
        recorder = self._recorder
        recorder.pending_tls_handshake.append(now_ns - channel.started_ns)
        if channel.ssl.session_reused:
            recorder.tls_resumed += 1
        # Ready before the handshake's last flight is sent, so a first request goes out in
        # the same send as the client's Finished.
        self._ready(conn, now_ns)
        if self.channels[conn.index] is channel and not channel.sending:
            self._send_wire(channel, conn.index, conn.handle, conn.token_base | OP_SEND)
        return True

    def ended_in_handshake(self, conn: C, now_ns: int) -> bool:
        """The TCP connection ended (EOF): True, after counting it as a ``tls`` error, when
        that was in the middle of the handshake (a server refusing the client so)."""
        if not self.in_handshake(conn):
            return False
        reason = "the server closed the connection in the handshake"
        self._fail(conn, KIND_TLS, now_ns, reason=reason)
        return True
