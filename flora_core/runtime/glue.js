// Runtime glue, evaluated first in every guild isolate. It evaluates to a
// setup function that the worker calls once with the raw op bridge.
(function setup(rawOp, guildId, timerLimitMs) {
  "use strict";
  const g = globalThis;
  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const define = (name, value) =>
    Object.defineProperty(g, name, { value, writable: false, configurable: false, enumerable: false });

  // Memory outside the V8 heap escapes the isolate's hard limit: ArrayBuffer and
  // friends are not reachable by scripts (mini-racer's setTimeout needs them).
  for (const name of [
    "ArrayBuffer", "SharedArrayBuffer", "DataView", "Atomics", "WebAssembly",
    "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
    "Int32Array", "Uint32Array", "Float16Array", "Float32Array", "Float64Array",
    "BigInt64Array", "BigUint64Array", "setTimeout", "clearTimeout", "__TimerManager",
  ]) {
    try { delete g[name]; } catch (_) { /* strict mode throws for non-configurable names */ }
    if (name in g) g[name] = undefined; // `var` globals cannot be deleted, only emptied
  }
  if ("__timer_manager" in g) g.__timer_manager = undefined;

  define("__floraGuildId", guildId);
  define("__floraTimerLimitMs", timerLimitMs || 0);
  define("__floraOp", async function __floraOp(name, args) {
    const raw = await rawOp(String(name), stringify(args === undefined ? null : args));
    const res = parse(raw);
    if (res.ok) return res.value;
    const err = new Error(res.error.message);
    err.code = res.error.code;
    if (res.error.extra) Object.assign(err, res.error.extra);
    throw err;
  });

  // Called by the worker for each event; reports subscription changes so the
  // runtime can keep unsubscribed events out of V8.
  define("__floraRun", async function __floraRun(event, payload, entropy) {
    if (entropy && g.__floraReseed) g.__floraReseed(entropy);
    await g.__floraDispatch(event, payload);
    if (g.__floraSettleTimers) await g.__floraSettleTimers(); // a dispatch ends when its timers have run
    return g.__floraTakeSubs();
  });
  define("__floraTakeSubs", function __floraTakeSubs() {
    if (!g.__floraSubsDirty) return null;
    g.__floraSubsDirty = false;
    const handlers = g.__floraHandlers || {};
    return stringify(Object.keys(handlers).filter((k) => handlers[k] && handlers[k].length));
  });
})
