// fetch() for guild scripts, over the op_fetch op (flora_plugins/secrets/fetch.py).
//
//   const res = await fetch(url, { method, headers, body, redirect });
//   res.status, res.statusText, res.ok, res.url, res.redirected, res.headers.get(name)
//   await res.text(), await res.json()
//
// Placeholders from secrets.get(name) are replaced by the runtime in the URL
// and in header values (never in the body), for the hosts the secret allows.
// Bodies are text (there is no ArrayBuffer in a guild isolate); a response is
// read whole, up to the runtime's size limit, before fetch() resolves.
(function installFetch() {
  "use strict";
  const g = globalThis;
  const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

  class Headers {
    #map = new Map(); // lower-case name -> [values]
    constructor(init) {
      if (init == null) return;
      if (init instanceof Headers || (typeof init === "object" && typeof init.entries === "function" && !Array.isArray(init))) {
        for (const [k, v] of init.entries()) this.append(k, v);
      } else if (Array.isArray(init) || (typeof init === "object" && typeof init[Symbol.iterator] === "function")) {
        for (const pair of init) {
          if (!pair || pair.length !== 2) throw new TypeError("Headers: each header must be a [name, value] pair");
          this.append(pair[0], pair[1]);
        }
      } else if (typeof init === "object") {
        for (const k of Object.keys(init)) this.append(k, init[k]);
      } else {
        throw new TypeError("Headers: expected an object, an array of pairs or a Headers");
      }
    }
    static #name(name) {
      const n = String(name);
      if (!HEADER_NAME.test(n)) throw new TypeError(`Headers: invalid header name '${n}'`);
      return n.toLowerCase();
    }
    static #value(value) {
      const v = String(value).replace(/^[\t ]+|[\t ]+$/g, "");
      if (/[\r\n\0]/.test(v)) throw new TypeError("Headers: header values may not contain CR, LF or NUL");
      return v;
    }
    append(name, value) {
      const n = Headers.#name(name);
      const list = this.#map.get(n);
      if (list) list.push(Headers.#value(value));
      else this.#map.set(n, [Headers.#value(value)]);
    }
    set(name, value) { this.#map.set(Headers.#name(name), [Headers.#value(value)]); }
    delete(name) { this.#map.delete(Headers.#name(name)); }
    get(name) {
      const list = this.#map.get(Headers.#name(name));
      return list ? list.join(", ") : null;
    }
    has(name) { return this.#map.has(Headers.#name(name)); }
    getSetCookie() { return [...(this.#map.get("set-cookie") || [])]; }
    *entries() {
      for (const name of [...this.#map.keys()].sort()) {
        if (name === "set-cookie") for (const v of this.#map.get(name)) yield [name, v];
        else yield [name, this.get(name)];
      }
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    forEach(fn, thisArg) { for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this); }
    [Symbol.iterator]() { return this.entries(); }
    // What op_fetch takes: every value of every header, as pairs.
    _pairs() {
      const out = [];
      for (const [name, list] of this.#map) for (const v of list) out.push([name, v]);
      return out;
    }
  }

  class Response {
    #body;
    #used = false;
    constructor(raw) {
      this.status = raw.status;
      this.statusText = raw.statusText || "";
      this.ok = raw.status >= 200 && raw.status < 300;
      this.url = raw.url || "";
      this.redirected = Boolean(raw.redirected);
      this.type = "basic";
      this.headers = new Headers(raw.headers || []);
      this.#body = raw.body == null ? "" : String(raw.body);
    }
    get bodyUsed() { return this.#used; }
    #take() {
      if (this.#used) throw new TypeError("Response body has already been read");
      this.#used = true;
      return this.#body;
    }
    async text() { return this.#take(); }
    async json() { return JSON.parse(this.#take()); }
    clone() {
      if (this.#used) throw new TypeError("Response body has already been read");
      return new Response({ status: this.status, statusText: this.statusText, url: this.url, redirected: this.redirected,
        headers: [...this.headers.entries()], body: this.#body });
    }
  }

  async function fetch(input, init) {
    const options = init || {};
    const url = typeof input === "string" ? input : input && typeof input.url === "string" ? input.url : String(input);
    const method = String(options.method || (input && input.method) || "GET").toUpperCase();
    const headers = new Headers(options.headers || (input && input.headers) || undefined);
    let body = options.body;
    if (body != null) {
      if (method === "GET" || method === "HEAD") throw new TypeError(`fetch: a ${method} request cannot have a body`);
      if (typeof URLSearchParams === "function" && body instanceof URLSearchParams) {
        if (!headers.has("content-type")) headers.set("content-type", "application/x-www-form-urlencoded;charset=UTF-8");
        body = body.toString();
      } else if (typeof body !== "string") {
        body = String(body);
      }
      if (!headers.has("content-type")) headers.set("content-type", "text/plain;charset=UTF-8");
    } else {
      body = null;
    }
    const redirect = options.redirect || "follow";
    if (!["follow", "manual", "error"].includes(redirect)) throw new TypeError(`fetch: invalid redirect mode '${redirect}'`);
    const raw = await g.__floraOp("op_fetch", { url, method, headers: headers._pairs(), body, redirect });
    return new Response(raw);
  }

  const define = (name, value) =>
    Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });
  define("fetch", fetch);
  if (typeof g.Headers !== "function") define("Headers", Headers);
  if (typeof g.Response !== "function") define("Response", Response);
})();
