"""``python -m flora_http.serve``: the API process, served by gevent.

gevent's monkey-patching must come before any other import, and belongs to
this process alone (never to a process that hosts V8 or the asyncio gateway).

Started by ``flora serve``'s supervisor (``flora_core/runtime/apiproc.py``), it is told the
supervisor's pid and given a pipe: when the pipe closes (the supervisor's orderly stop, or its death)
the API stops listening, lets requests in flight finish for ``STOP_REQUESTS_SECS`` and exits; it
dies with the supervisor (``lifeline.die_with_parent``), and a group SIGINT/SIGTERM waits for that
orderly stop (``lifeline.CHILD_STOP_GRACE_SECS`` at most). Run by hand, SIGINT/SIGTERM stop it at once.
"""

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import gevent.os  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from flora_core.config import ConfigError, load_config, require_redis_client  # noqa: E402
from flora_core.plugins import PluginError  # noqa: E402
from flora_core.runtime import lifeline  # noqa: E402
from flora_core.storage import StorageError  # noqa: E402

log = logging.getLogger("flora.api")

STOP_REQUESTS_SECS = 1.0  # requests in flight get this long at a stop; then they are cut


def _supervisor() -> tuple[int, int] | None:
    """(pid, pipe fd) when the supervisor started this process; the variables are not passed on."""
    pid, fd = os.environ.pop(lifeline.SUPERVISOR_PID_ENV, None), os.environ.pop(lifeline.SUPERVISOR_FD_ENV, None)
    if not pid or not fd:
        return None
    try:
        return int(pid), int(fd)
    except ValueError:
        print(
            f"flora api: ignoring {lifeline.SUPERVISOR_PID_ENV}={pid!r} {lifeline.SUPERVISOR_FD_ENV}={fd!r} (not numbers)",
            file=sys.stderr,
        )
        return None


class _Stopper:
    """Stops the server once, whatever asks first (a signal, the supervisor's pipe)."""

    def __init__(self) -> None:
        self.server: WSGIServer | None = None
        self.reason: str | None = None
        self.signalled = False  # a group signal armed the fallback timer

    def stop(self, reason: str) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        log.info("flora api stopping (%s)", reason)
        if self.server is not None:
            self.server.stop(timeout=STOP_REQUESTS_SECS)


def _watch_supervisor(stopper: _Stopper, pid: int, fd: int) -> None:
    """Until the pipe closes: the supervisor's orderly stop, or its death (it alone holds the other end)."""
    try:
        gevent.os.make_nonblocking(fd)  # nb_read waits in the hub only on a non-blocking descriptor
        while gevent.os.nb_read(fd, 4096):
            pass
    except OSError:
        pass
    stopper.stop("asked by the supervisor" if os.getppid() == pid else "the supervisor is gone")


def _on_signal(stopper: _Stopper, supervised: bool, signum: int) -> None:
    if not supervised:
        stopper.stop(f"signal {signum}")
        return
    # the whole process group got it: the supervisor stops us in order; stop anyway if it never does
    if stopper.signalled:
        return
    stopper.signalled = True
    gevent.spawn_later(
        lifeline.CHILD_STOP_GRACE_SECS,
        stopper.stop,
        f"signal {signum} and no orderly stop from the supervisor within {lifeline.CHILD_STOP_GRACE_SECS:g} s",
    )


def patch_psycopg() -> None:
    """Make psycopg2 cooperative under gevent when Postgres is in use (needs psycogreen)."""
    try:
        from psycogreen.gevent import patch_psycopg as _patch
    except ImportError:
        return
    _patch()


def _log_level(raw: str) -> int:
    level = logging.getLevelName(str(raw).split(",")[0].split("=")[-1].strip().upper())
    return level if isinstance(level, int) else logging.INFO


def main() -> int:
    supervisor = _supervisor()
    if supervisor is not None:
        lifeline.die_with_parent(supervisor[0])
    stopper = _Stopper()
    gevent.signal_handler(signal.SIGTERM, _on_signal, stopper, supervisor is not None, signal.SIGTERM)
    gevent.signal_handler(signal.SIGINT, _on_signal, stopper, supervisor is not None, signal.SIGINT)
    lifeline.release_signals()  # held by the supervisor until these handlers were in place
    if supervisor is not None:
        gevent.spawn(_watch_supervisor, stopper, *supervisor)
    try:
        config = load_config()
        require_redis_client(config)
    except ConfigError as exc:
        print(f"flora api: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=_log_level(config.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.database_url and not config.database_url.startswith("sqlite"):
        patch_psycopg()

    from flora_http.app import create_app, with_request_timeout

    try:
        app = create_app(config)
    except ConfigError as exc:
        print(f"flora api: {exc}", file=sys.stderr)
        return 2
    except (StorageError, PluginError) as exc:
        print(f"flora api: {exc}", file=sys.stderr)
        return 1

    server = WSGIServer(
        (config.api_address, config.api_port),
        with_request_timeout(app, config.api_request_timeout_secs),
        log=logging.getLogger("flora.api.access"),
        error_log=logging.getLogger("flora.api.errors"),
    )
    try:
        server.start()
    except OSError as exc:
        print(f"flora api: cannot listen on {config.api_address}:{config.api_port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    host, port = server.address[:2]
    log.info("flora api listening on http://%s:%s/api", host, port)
    stopper.server = server
    if stopper.reason is not None:  # asked to stop while starting
        server.stop(timeout=STOP_REQUESTS_SECS)
        return 0
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
