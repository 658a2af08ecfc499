"""flora's whole-request timeout: a request that takes longer than API_REQUEST_TIMEOUT_SECS gets 408."""

from __future__ import annotations

import gevent
from flask import Flask, Response
from werkzeug.test import Client

from flora_http.app import with_request_timeout


def _app():
    app = Flask(__name__)

    @app.get("/api/slow")
    def slow():
        gevent.sleep(2)
        return {"done": True}

    @app.get("/api/fast")
    def fast():
        return {"done": True}

    @app.get("/api/logs/1/stream")
    def stream():
        gevent.sleep(1.5)
        return Response("data: x\n\n", mimetype="text/event-stream")

    return app


def test_slow_requests_get_408_and_others_are_untouched():
    client = Client(with_request_timeout(_app(), 1))
    slow = client.get("/api/slow")
    assert slow.status_code == 408 and slow.get_json() == {"message": "Request timed out"}
    assert client.get("/api/fast").get_json() == {"done": True}
    assert client.get("/api/logs/1/stream").status_code == 200  # streams are long-lived by design


def test_zero_turns_the_timeout_off():
    app = _app()
    assert with_request_timeout(app, 0) is app
