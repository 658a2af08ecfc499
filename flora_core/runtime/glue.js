// Runtime glue, evaluated first in every guild isolate. It evaluates to a
// setup function that the worker calls once with `bell`, a mini-racer
// notification (JS -> Python, one way).
//
// Once the guild's code has run, Python never makes a blocking call into this
// isolate (such a call waits behind a spinning script, and the context could
// then not be closed either). So JS talks to Python through an outbox: op
// requests and the completion of runs are queued here, `bell()` says that
// there is something, and Python takes the queue with a cancelable eval of
// __floraTakeOutbox(); op results come back with an eval of __floraSettle().
(function setup(bell, guildId, timerLimitMs) {
  "use strict";
  const g = globalThis;
  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const P = Promise;
  const then = Promise.prototype.then;
  const StringOf = String;
  // The status word: the id of the run whose synchronous code is executing, 0 when none is. Python reads
  // this memory directly (the buffer goes back to it from setup) to tell a handler's own code from a
  // promise callback while a script spins, without calling into V8.
  const statusBuffer = new ArrayBuffer(8);
  const status = new Int32Array(statusBuffer);
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

  // ---- the outbox (the runtime's own code: nothing a script can replace is used here)
  const outbox = [];
  let rung = false;
  function post(record) {
    outbox[outbox.length] = record;
    if (!rung) {
      rung = true;
      bell();
    }
  }
  define("__floraTakeOutbox", function __floraTakeOutbox() {
    rung = false;
    const out = stringify(outbox);
    outbox.length = 0;
    return out;
  });
  const pendingOps = Object.create(null);
  let nextOp = 1;
  function rawOp(name, argsJson) {
    const id = nextOp++;
    return new P((resolve) => {
      pendingOps[id] = resolve;
      post(["op", id, name, argsJson]);
    });
  }
  define("__floraSettle", function __floraSettle(results) {
    for (let i = 0; i < results.length; i++) {
      const id = results[i][0];
      const resolve = pendingOps[id];
      if (resolve) {
        delete pendingOps[id];
        resolve(results[i][1]);
      }
    }
  });
  function errorText(err) {
    try {
      if (err !== null && typeof err === "object" && "stack" in err && err.stack) return StringOf(err.stack);
      return StringOf(err);
    } catch (_) {
      return "a value that cannot be printed was thrown";
    }
  }
  // A run (a dispatch, the end of a load) reports how it ended through the outbox. __floraBegin(id)
  // comes first, in the same eval; tracking ends its synchronous part.
  define("__floraBegin", function __floraBegin(runId) {
    status[0] = runId;
  });
  function track(runId, promise) {
    status[0] = 0;
    then.call(promise,
      (value) => post(["done", runId, true, value === undefined ? null : value]),
      (err) => post(["done", runId, false, errorText(err)]));
  }
  define("__floraTrack", track);

  // A script with top-level await is bundled as `__floraTopLevel(async () => {<module body>});` (see
  // bundle_driver.js): its body starts here, during the eval of the bundle, and the load then awaits
  // it (__floraTopLevelDone, under the load deadline). Only the first call counts.
  let topLevel = null;
  let topLevelTaken = false;
  define("__floraTopLevel", function __floraTopLevel(body) {
    if (topLevel !== null || topLevelTaken) throw new TypeError("__floraTopLevel: the script's top level has already started");
    if (typeof body !== "function") throw new TypeError("__floraTopLevel: the top level must be a function");
    topLevel = P.resolve(undefined);
    topLevel = body();
  });
  define("__floraTopLevelDone", function __floraTopLevelDone() {
    const done = topLevel;
    topLevelTaken = true;
    topLevel = null;
    return then.call(P.resolve(done), () => null);
  });

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
  define("__floraRun", function __floraRun(runId, event, payload, entropy) {
    status[0] = runId;
    track(runId, (async () => {
      if (entropy && g.__floraReseed) g.__floraReseed(entropy);
      await g.__floraDispatch(event, payload);
      if (g.__floraSettleTimers) await g.__floraSettleTimers(); // a dispatch ends when its timers have run
      return g.__floraTakeSubs();
    })());
  });
  define("__floraTakeSubs", function __floraTakeSubs() {
    if (!g.__floraSubsDirty) return null;
    g.__floraSubsDirty = false;
    const handlers = g.__floraHandlers || {};
    return stringify(Object.keys(handlers).filter((k) => handlers[k] && handlers[k].length));
  });
  return statusBuffer;
})
