// hello(name) for guild scripts: flora-hello's extension of the SDK (a global, and flora.hello).
// Loaded into every isolate after the SDK (order 50); without the sdk plugin it installs nothing and
// scripts call the op directly: await __floraOp("op_hello", { name }).
(function floraHello() {
  "use strict";
  const provide = globalThis.__floraProvide;
  if (typeof provide !== "function") return;
  provide("hello", (name) => globalThis.__floraOp("op_hello", { name }));
})();
