"""farm's Redis transport: kombu's, except that a message it cannot decode is dropped (and kept
in a bounded dead-letter list) instead of killing the service that read it.

kombu's Redis channel pops a message (BRPOP, or RPOP when polling), then parses its JSON
envelope and builds a Message from it in the consumer's event loop: garbage there (not JSON,
JSON that is not an envelope, a body that is not the base64 it claims) raises out of the loop
and stops the worker. Celery handles what comes after (an unknown task, an undecodable body:
`on_unknown_message`, `on_decode_error`); this covers the step before, where the raw bytes
enter: the client's reply to BRPOP/RPOP is checked by building the Message kombu would build,
and a reply that fails is answered as "nothing there" (kombu's `Empty`), as kombu itself does
for undecodable events on its fan-out channel.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from farm import keys

log = logging.getLogger("farm.transport")

#: Dead letters kept (the newest), and the bytes kept of each.
DEAD_LETTERS_KEPT = 100
RAW_KEPT = 64 * 1024


class Channel(kombu_redis.Channel):
    """A Redis channel whose client refuses undecodable messages as they are popped."""

    def _get_client(self) -> Any:
        base = super()._get_client()
        if not isinstance(base, type):  # a global key prefix (not used by farm): kombu's client as it is
            return base
        channel = self

        class Client(base):  # type: ignore[misc, valid-type]
            def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
                reply = super().parse_response(connection, command_name, **options)
                if command_name == "BRPOP" and reply and not channel.accepts(reply[0], reply[1]):
                    return None  # kombu then raises Empty: nothing delivered, the loop goes on
                return reply

            def rpop(self, name: Any, count: Any = None) -> Any:
                reply = super().rpop(name, count) if count is not None else super().rpop(name)
                if isinstance(reply, bytes | str) and not channel.accepts(name, reply):
                    return None
                return reply

        return Client

    def accepts(self, queue: bytes | str, raw: bytes | str) -> bool:
        """Whether kombu can make a Message of `raw`; if not, it is logged and dead-lettered."""
        try:
            self.Message(loads(bytes_to_str(raw)), channel=self)
            return True
        except Exception as exc:  # whatever garbage raises, the consumer must outlive it
            name = bytes_to_str(queue).rsplit(self.sep, 1)[0]  # without a priority suffix, as kombu does
            self.keep_dead_letter(name, raw, f"{_kind(exc)}: {exc}")
            return False

    def keep_dead_letter(self, queue: str, raw: bytes | str, error: str) -> None:
        """Log a dropped message in one line and keep its bytes in the bounded dead-letter list."""
        log.error("dropped an unusable message on %s (%s); its bytes are kept in %s",
                  queue, error[:300], keys.DEAD_LETTERS)
        try:
            with self.conn_or_acquire() as client:
                dead_letter(client, queue, raw, error)
        except redis.RedisError as exc:  # the log line above is all there is then
            log.warning("could not keep the dropped message in %s: %s", keys.DEAD_LETTERS, exc)


def dead_letter(client: redis.Redis, queue: str, raw: bytes | str, error: str) -> None:
    """Keep a dropped message's bytes (the first RAW_KEPT) in the bounded dead-letter list."""
    data = raw.encode() if isinstance(raw, str) else raw
    entry = json.dumps({"queue": queue, "error": error[:2000], "at": time.time(), "size": len(data),
                        "raw": data[:RAW_KEPT].decode("utf-8", "backslashreplace")})
    try:
        with client.pipeline() as pipe:
            pipe.lpush(keys.DEAD_LETTERS, entry)
            pipe.ltrim(keys.DEAD_LETTERS, 0, DEAD_LETTERS_KEPT - 1)
            pipe.execute()
    except redis.RedisError as exc:  # the caller's log line is all there is then
        log.warning("could not keep the dropped message in %s: %s", keys.DEAD_LETTERS, exc)


def drop_unsigned(app: Any, queue: str, message: object, error: str) -> None:
    """A task's message not signed by the farm (unsigned, mis-signed, an unknown key: farm.signing):
    one warning line, and a dead letter."""
    raw = message if isinstance(message, bytes) else repr(message).encode()
    log.warning("dropped a message on %s: %s; its bytes are kept in %s", queue, error[:300], keys.DEAD_LETTERS)
    try:
        with app.pool.acquire(block=True) as conn:
            dead_letter(conn.default_channel.client, queue, raw, error)
    except Exception as exc:  # the broker went away: the log line above is all there is then
        log.warning("could not keep the dropped message in %s: %s", keys.DEAD_LETTERS, exc)


def _kind(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with farm's Channel (`broker_transport` in farm.celery_app)."""

    Channel = Channel
