// Web globals that script authors expect, made safe for a tenant isolate.
//
// None of them reaches memory outside the V8 heap (no ArrayBuffer: byte
// sequences are plain arrays of numbers) and none outlives the dispatch
// deadline: a timer longer than the deadline is refused, and a dispatch
// (or a load) is only finished when its pending timers have run.
(function installWebGlobals() {
  "use strict";
  const g = globalThis;
  const op = g.__floraOp;
  const define = (name, value) => {
    const existing = Object.getOwnPropertyDescriptor(g, name);
    if (existing && !existing.configurable) g[name] = value; // `var` globals (mini-racer's setTimeout) can only be assigned
    else Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });
  };

  // ---- timers ---------------------------------------------------------
  const timers = new Map();
  let nextTimer = 1;
  function setTimeout(callback, delay, ...args) {
    if (typeof callback !== "function") throw new TypeError("setTimeout callback must be a function");
    const ms = Math.max(0, Math.floor(Number(delay) || 0));
    const limit = g.__floraTimerLimitMs;
    if (limit && ms > limit) {
      throw new RangeError(`setTimeout delay ${ms}ms exceeds the ${limit}ms dispatch deadline`);
    }
    const id = nextTimer++;
    const done = op("op_sleep", { ms }).then(() => {
      if (timers.delete(id)) return callback(...args);
    });
    timers.set(id, done.catch((err) => console.error("setTimeout callback failed:", err)));
    return id;
  }
  function clearTimeout(id) {
    timers.delete(id);
  }
  define("setTimeout", setTimeout);
  define("clearTimeout", clearTimeout);
  define("queueMicrotask", (fn) => {
    if (typeof fn !== "function") throw new TypeError("queueMicrotask callback must be a function");
    Promise.resolve().then(fn).catch((err) => console.error("queueMicrotask callback failed:", err));
  });
  // Awaited by the runtime at the end of every dispatch and load.
  Object.defineProperty(g, "__floraSettleTimers", {
    value: async function settleTimers() {
      while (timers.size) await Promise.all([...timers.values()]);
    },
  });

  // ---- base64 ---------------------------------------------------------
  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  define("btoa", function btoa(input) {
    const s = String(input);
    let out = "";
    for (let i = 0; i < s.length; i += 3) {
      const a = s.charCodeAt(i), b = s.charCodeAt(i + 1), c = s.charCodeAt(i + 2);
      if (a > 255 || b > 255 || c > 255) throw new Error("btoa: the string contains characters outside Latin-1");
      const n = (a << 16) | ((b || 0) << 8) | (c || 0);
      out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < s.length ? B64[(n >> 6) & 63] : "=") + (i + 2 < s.length ? B64[n & 63] : "=");
    }
    return out;
  });
  define("atob", function atob(input) {
    const s = String(input).replace(/[\t\n\f\r ]/g, "");
    if (s.length % 4 === 1 || /[^A-Za-z0-9+/=]/.test(s) || /=[^=]/.test(s)) throw new Error("atob: invalid base64");
    let out = "";
    let bits = 0, value = 0;
    for (const ch of s.replace(/=+$/, "")) {
      value = (value << 6) | B64.indexOf(ch);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out += String.fromCharCode((value >> bits) & 255);
      }
    }
    return out;
  });

  // ---- text encoding (bytes are plain arrays: no ArrayBuffer) ----------
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(input = "") {
      const bytes = [];
      for (const ch of String(input)) {
        let cp = ch.codePointAt(0);
        if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // lone surrogate
        if (cp < 0x80) bytes.push(cp);
        else if (cp < 0x800) bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
        else if (cp < 0x10000) bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
        else bytes.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
      }
      return bytes;
    }
  }
  class TextDecoder {
    get encoding() { return "utf-8"; }
    decode(bytes = []) {
      let out = "";
      for (let i = 0; i < bytes.length; ) {
        const b = bytes[i] & 255;
        const need = b < 0x80 ? 0 : b >= 0xf0 && b < 0xf8 ? 3 : b >= 0xe0 ? 2 : b >= 0xc0 ? 1 : -1;
        if (need < 0 || i + need > bytes.length - 1) { // not a lead byte, or truncated sequence
          out += "\ufffd";
          i += 1;
          continue;
        }
        let cp = need === 0 ? b : b & (0x3f >> need);
        let ok = true;
        for (let k = 1; k <= need; k++) {
          const c = bytes[i + k] & 255;
          if ((c & 0xc0) !== 0x80) { ok = false; break; }
          cp = (cp << 6) | (c & 63);
        }
        if (!ok || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
          out += "\ufffd";
          i += 1;
          continue;
        }
        out += String.fromCodePoint(cp);
        i += need + 1;
      }
      return out;
    }
  }
  define("TextEncoder", TextEncoder);
  define("TextDecoder", TextDecoder);

  // ---- structuredClone --------------------------------------------------
  define("structuredClone", function structuredClone(value) {
    const seen = new Map();
    const clone = (v) => {
      if (v === null || typeof v !== "object") {
        if (typeof v === "function" || typeof v === "symbol") throw new Error(`structuredClone: ${typeof v} could not be cloned`);
        return v;
      }
      if (seen.has(v)) return seen.get(v);
      let out;
      if (v instanceof Date) out = new Date(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof Map) { out = new Map(); seen.set(v, out); for (const [k, x] of v) out.set(clone(k), clone(x)); return out; }
      else if (v instanceof Set) { out = new Set(); seen.set(v, out); for (const x of v) out.add(clone(x)); return out; }
      else if (v instanceof Error) { out = new v.constructor(v.message); seen.set(v, out); return out; }
      else if (Array.isArray(v)) { out = []; seen.set(v, out); for (let i = 0; i < v.length; i++) out[i] = clone(v[i]); return out; }
      else { out = {}; seen.set(v, out); for (const k of Object.keys(v)) out[k] = clone(v[k]); return out; }
      seen.set(v, out);
      return out;
    };
    return clone(value);
  });

  // ---- crypto.randomUUID -------------------------------------------------
  // xoshiro128** reseeded with 128 fresh bits from the OS at every load and
  // every dispatch (the runtime passes them in), so ids are unpredictable to
  // other guilds and across restarts. Not a source of key material.
  const state = [0x9e3779b9, 0x243f6a88, 0xb7e15162, 0x3c6ef372];
  const rotl = (x, k) => ((x << k) | (x >>> (32 - k))) >>> 0;
  function next() {
    const result = (rotl((state[1] * 5) >>> 0, 7) * 9) >>> 0;
    const t = (state[1] << 9) >>> 0;
    state[2] ^= state[0]; state[3] ^= state[1]; state[1] ^= state[2]; state[0] ^= state[3];
    state[2] = (state[2] ^ t) >>> 0; state[3] = rotl(state[3], 11);
    return result;
  }
  Object.defineProperty(g, "__floraReseed", {
    value: function reseed(hex) {
      for (let i = 0; i < 4 && i * 8 < hex.length; i++) state[i] = (state[i] ^ parseInt(hex.slice(i * 8, i * 8 + 8), 16)) >>> 0;
      if (!(state[0] | state[1] | state[2] | state[3])) state[0] = 1;
      for (let i = 0; i < 8; i++) next();
    },
  });
  const hex8 = (n) => n.toString(16).padStart(8, "0");
  define("crypto", Object.freeze({
    randomUUID() {
      const a = next(), b = (next() & 0xffff0fff) | 0x4000, c = (next() & 0x3fffffff) | 0x80000000, d = next();
      const h = hex8(a) + hex8(b >>> 0) + hex8(c >>> 0) + hex8(d);
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  }));

  // ---- URL and URLSearchParams -----------------------------------------
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, "+");
  const dec = (s) => { try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch (_) { return s; } };
  class URLSearchParams {
    #list = [];
    #onChange = null;
    constructor(init = "", onChange = null) {
      if (typeof init === "string") {
        for (const part of init.replace(/^\?/, "").split("&")) {
          if (!part) continue;
          const i = part.indexOf("=");
          this.#list.push(i < 0 ? [dec(part), ""] : [dec(part.slice(0, i)), dec(part.slice(i + 1))]);
        }
      } else if (init && typeof init[Symbol.iterator] === "function") {
        for (const [k, v] of init) this.#list.push([String(k), String(v)]);
      } else if (init && typeof init === "object") {
        for (const k of Object.keys(init)) this.#list.push([k, String(init[k])]);
      }
      this.#onChange = onChange;
    }
    #changed() { if (this.#onChange) this.#onChange(this.toString()); }
    append(k, v) { this.#list.push([String(k), String(v)]); this.#changed(); }
    delete(k) { this.#list = this.#list.filter(([n]) => n !== String(k)); this.#changed(); }
    get(k) { const e = this.#list.find(([n]) => n === String(k)); return e ? e[1] : null; }
    getAll(k) { return this.#list.filter(([n]) => n === String(k)).map(([, v]) => v); }
    has(k) { return this.#list.some(([n]) => n === String(k)); }
    set(k, v) {
      const i = this.#list.findIndex(([n]) => n === String(k));
      if (i < 0) this.#list.push([String(k), String(v)]);
      else { this.#list[i] = [String(k), String(v)]; this.#list = this.#list.filter(([n], j) => j <= i || n !== String(k)); }
      this.#changed();
    }
    sort() { this.#list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this.#changed(); }
    forEach(fn, thisArg) { for (const [k, v] of this.#list) fn.call(thisArg, v, k, this); }
    keys() { return this.#list.map(([k]) => k)[Symbol.iterator](); }
    values() { return this.#list.map(([, v]) => v)[Symbol.iterator](); }
    entries() { return this.#list.map((e) => [...e])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    get size() { return this.#list.length; }
    toString() { return this.#list.map(([k, v]) => `${enc(k)}=${enc(v)}`).join("&"); }
  }

  const DEFAULT_PORTS = { "http:": "80", "https:": "443", "ws:": "80", "wss:": "443", "ftp:": "21" };
  const URL_RE = /^([a-zA-Z][a-zA-Z0-9+.-]*:)(?:\/\/(?:([^:@/?#]*)(?::([^@/?#]*))?@)?(\[[^\]]*\]|[^:/?#]*)(?::(\d*))?)?([^?#]*)(\?[^#]*)?(#.*)?$/;
  class URL {
    #p;
    #params;
    constructor(url, base) {
      let input = String(url).trim();
      if (base !== undefined && !/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(input)) input = URL.#resolve(input, new URL(base));
      const m = URL_RE.exec(input);
      if (!m) throw new TypeError(`Invalid URL: ${url}`);
      const special = m[1].toLowerCase() in DEFAULT_PORTS;
      if (special && m[4] === undefined) throw new TypeError(`Invalid URL: ${url}`);
      if (special && !m[4]) throw new TypeError(`Invalid URL: ${url}`);
      const protocol = m[1].toLowerCase();
      let port = m[5] || "";
      if (port && Number(port) > 65535) throw new TypeError(`Invalid URL: ${url}`);
      if (port === DEFAULT_PORTS[protocol]) port = "";
      this.#p = {
        protocol,
        username: m[2] || "",
        password: m[3] || "",
        hostname: (m[4] || "").toLowerCase(),
        port,
        pathname: URL.#normalizePath(m[6] || (special ? "/" : "")),
        search: m[7] && m[7] !== "?" ? m[7] : "",
        hash: m[8] && m[8] !== "#" ? m[8] : "",
        hasAuthority: m[4] !== undefined,
      };
      this.#params = new URLSearchParams(this.#p.search, (q) => { this.#p.search = q ? `?${q}` : ""; });
    }
    static #normalizePath(path) {
      const out = [];
      for (const seg of path.split("/")) {
        if (seg === "..") { if (out.length > 1) out.pop(); }
        else if (seg !== ".") out.push(seg);
      }
      return out.join("/").replace(/ /g, "%20") || (path.startsWith("/") ? "/" : "");
    }
    static #resolve(rel, base) {
      if (rel.startsWith("//")) return base.protocol + rel;
      const origin = `${base.protocol}//${base.host}`;
      if (rel.startsWith("/")) return origin + rel;
      if (rel.startsWith("?")) return origin + base.pathname + rel;
      if (rel.startsWith("#")) return origin + base.pathname + base.search + rel;
      return origin + base.pathname.replace(/[^/]*$/, "") + rel;
    }
    get protocol() { return this.#p.protocol; }
    get username() { return this.#p.username; }
    get password() { return this.#p.password; }
    get hostname() { return this.#p.hostname; }
    get port() { return this.#p.port; }
    get host() { return this.#p.port ? `${this.#p.hostname}:${this.#p.port}` : this.#p.hostname; }
    get origin() { return this.#p.hasAuthority ? `${this.#p.protocol}//${this.host}` : "null"; }
    get pathname() { return this.#p.pathname; }
    set pathname(v) { this.#p.pathname = URL.#normalizePath(String(v).startsWith("/") ? String(v) : `/${v}`); }
    get search() { return this.#p.search; }
    set search(v) { const s = String(v).replace(/^\?/, ""); this.#p.search = s ? `?${s}` : ""; this.#params = new URLSearchParams(s, (q) => { this.#p.search = q ? `?${q}` : ""; }); }
    get hash() { return this.#p.hash; }
    set hash(v) { const s = String(v).replace(/^#/, ""); this.#p.hash = s ? `#${s}` : ""; }
    get searchParams() { return this.#params; }
    get href() {
      const auth = this.#p.username ? `${this.#p.username}${this.#p.password ? `:${this.#p.password}` : ""}@` : "";
      const authority = this.#p.hasAuthority ? `//${auth}${this.host}` : "";
      return `${this.#p.protocol}${authority}${this.#p.pathname}${this.#p.search}${this.#p.hash}`;
    }
    toString() { return this.href; }
    toJSON() { return this.href; }
    static canParse(url, base) { try { new URL(url, base); return true; } catch (_) { return false; } }
  }
  define("URL", URL);
  define("URLSearchParams", URLSearchParams);
})();
