// Runtime events: evaluated in every guild isolate right after glue.js, before any plugin's JavaScript.
// The core owns the handler table and the entry point the worker dispatches to (glue.js's __floraRun
// calls __floraDispatch), so a script runs with no plugin's JavaScript at all (FLORA_DISABLE_PLUGINS=sdk):
//
//   __floraOn(event, handler)            subscribe handler to event (the SDK's on() is this)
//   __floraOff(event, handler)           drop the latest subscription of handler; true if there was one
//   __floraDefineContext(prefix, make)   handlers of events whose name starts with prefix receive
//                                        make(payload, event); the longest prefix wins; without one a
//                                        handler receives { msg: payload }
//   __floraDispatch(event, payload)      run event's handlers one after the other (payload: an object or
//                                        its JSON text); a throw stops the rest and rejects the dispatch
//   __floraHandlers, __floraSubsDirty    event -> handlers; set when an event gets its first handler or
//                                        loses its last, so the runtime reads the subscriptions again
//
// The SDK defines the context of every event (prefix "", with reply/edit), the cron plugin the one of
// "__cron:" events.
(function floraEvents() {
  "use strict";
  const g = globalThis;
  const define = (name, value) =>
    Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });

  g.__floraHandlers = {};
  g.__floraSubsDirty = true;

  define("__floraOn", function __floraOn(event, handler) {
    const handlers = g.__floraHandlers;
    if (!handlers[event] || handlers[event].length === 0) {
      handlers[event] = [];
      g.__floraSubsDirty = true;
    }
    handlers[event].push(handler);
  });

  define("__floraOff", function __floraOff(event, handler) {
    const list = g.__floraHandlers[event];
    const index = list ? list.lastIndexOf(handler) : -1;
    if (index < 0) return false;
    list.splice(index, 1);
    if (list.length === 0) {
      delete g.__floraHandlers[event];
      g.__floraSubsDirty = true;
    }
    return true;
  });

  const contexts = []; // [prefix, make], the longest prefix first
  define("__floraDefineContext", function __floraDefineContext(prefix, make) {
    if (typeof prefix !== "string") throw new TypeError("__floraDefineContext: the prefix must be a string");
    if (typeof make !== "function") throw new TypeError("__floraDefineContext: make must be a function");
    if (contexts.some((c) => c[0] === prefix)) {
      throw new TypeError(`__floraDefineContext: the context of events starting with ${JSON.stringify(prefix)} is already defined`);
    }
    contexts.push([prefix, make]);
    contexts.sort((a, b) => b[0].length - a[0].length);
  });

  function contextFor(event, payload) {
    const name = String(event);
    for (let i = 0; i < contexts.length; i++) {
      if (name.startsWith(contexts[i][0])) return contexts[i][1](payload, name);
    }
    return { msg: payload };
  }

  define("__floraDispatch", async function __floraDispatch(event, payload) {
    if (typeof payload === "string") payload = JSON.parse(payload);
    const handlers = g.__floraHandlers[event] || [];
    for (const handler of handlers) {
      await handler(contextFor(event, payload));
    }
  });
})();
