"""Script errors as the guild sees them: flora's rule of hiding the runtime's own stack frames
(flora's runtime/worker.rs tests), on real V8 errors."""

from __future__ import annotations

from py_mini_racer import JSEvalException, MiniRacer

from flora_core.runtime.isolate import js_error_text, user_visible_error


def _error(show_internal: bool) -> str:
    mr = MiniRacer()
    try:
        mr.eval("function sdkHelper(cb) { return cb(); }\n//# sourceURL=flora-internal/sdk.js")
        mr.eval(
            "function handler() { return sdkHelper(() => { throw new TypeError('bad input'); }); }\n"
            "//# sourceURL=guild/123/bundle.js"
        )
        try:
            mr.eval("handler()")
        except JSEvalException as exc:
            return js_error_text(exc, show_internal)
    finally:
        mr.close()
    raise AssertionError("no error")


def test_internal_frames_are_hidden_by_default():
    text = _error(False)
    assert text.splitlines()[0].startswith("guild/123/bundle.js:1: TypeError: bad input")
    assert "guild/123/bundle.js:1:" in text  # the user's frames stay
    assert "flora-internal/" not in text and "<anonymous>" not in text
    assert text.endswith("... 2 internal frame(s) hidden (set RUNTIME_SHOW_INTERNAL_STACK_FRAMES=true to show)")


def test_internal_frames_are_kept_when_enabled():
    text = _error(True)
    assert "at sdkHelper (flora-internal/sdk.js:1:" in text and "hidden" not in text


def test_an_error_raised_inside_runtime_code_drops_the_runtime_source_excerpt():
    raw = (
        "flora-internal/prelude.js:1: Error: boom\nfunction inner(){ throw new Error('boom') }\n   ^\n\n"
        "Error: boom\n    at inner (flora-internal/prelude.js:1:25)\n    at user (guild/1/bundle.js:1:18)\n    at <anonymous>:1:1\n"
    )
    assert user_visible_error(raw) == (
        "Error: boom\n    at user (guild/1/bundle.js:1:18)\n"
        "    ... 2 internal frame(s) hidden (set RUNTIME_SHOW_INTERNAL_STACK_FRAMES=true to show)"
    )
    assert "function inner" in user_visible_error(raw, show_internal=True) or "at inner" in user_visible_error(raw, True)
