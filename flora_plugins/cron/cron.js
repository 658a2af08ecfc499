// cron(name, expr, handler, options) for guild scripts: the cron plugin's extension of the SDK.
//
// Registration is asynchronous here: the returned promise rejects with the runtime's message
// (invalid expression, duplicate name, too many jobs), and the error is also written to the log, so
// it is seen even when not awaited. The scheduler (scheduler.py) dispatches "__cron:<name>" with
// {name, scheduledAt}; handlers get exactly that (plus a hidden `msg`, what flora actually passed).
(function floraCron() {
  "use strict";
  const g = globalThis;
  const provide = g.__floraProvide;
  if (typeof provide !== "function") return; // the sdk plugin is disabled: there is no SDK to extend

  const CRON_EVENT_PREFIX = "__cron:";

  g.__floraDefineContext(CRON_EVENT_PREFIX, (payload) => {
    const { name, scheduledAt } = payload || {};
    const ctx = { name, scheduledAt };
    // The original runtime handed cron handlers `{msg: payload, ...}`; keep
    // `ctx.msg` working for scripts that relied on it, without showing it.
    Object.defineProperty(ctx, "msg", { value: payload, enumerable: false });
    return ctx;
  });

  function cron(name, cronExpr, handler, options) {
    if (typeof name !== "string" || !name.length) {
      throw new TypeError("cron name must be a non-empty string");
    }
    if (typeof cronExpr !== "string" || !cronExpr.length) {
      throw new TypeError("cron expression must be a non-empty string");
    }
    if (typeof handler !== "function") {
      throw new TypeError("cron handler must be a function");
    }
    const event = CRON_EVENT_PREFIX + name;
    g.__floraOn(event, handler);
    let registration;
    try {
      registration = Promise.resolve(
        g.__floraOp("op_register_cron", {
          name,
          expr: cronExpr,
          skipIfRunning: Boolean(options?.skipIfRunning),
          catchUp: options?.catchUp ?? "none",
        })
      );
    } catch (err) {
      registration = Promise.reject(err);
    }
    registration.catch((err) => {
      g.__floraOff(event, handler); // a job that was not registered never fires: forget its handler
      g.console.error(`cron '${name}' was not registered: ${err && err.message ? err.message : err}`);
    });
    return registration;
  }

  provide("cron", cron);
})();
