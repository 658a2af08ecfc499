// kv.store(name), store(name) and KvStore for guild scripts: the kv plugin's extension of the SDK
// (each a global and a member of `flora`), over the op_kv_* ops (ops.py).
(function floraKv() {
  "use strict";
  const g = globalThis;
  const provide = g.__floraProvide;
  if (typeof provide !== "function") return; // the sdk plugin is disabled: there is no SDK to extend

  function op(name, args) {
    return g.__floraOp(name, args);
  }

  // ====================================================================
  // KV: per-guild named stores. A store must be created first (HTTP API or
  // `flora kv create-store`); values are strings, expiration is unix seconds.
  // ====================================================================

  // flora's typings allowed bigint for expiration/limit; JSON does not.
  function plainNumber(value) {
    return typeof value === "bigint" ? Number(value) : value;
  }

  class KvStore {
    #storeName;

    constructor(storeName) {
      this.#storeName = storeName;
    }

    // The value, or null if the key is missing or expired.
    async get(key) {
      return await op("op_kv_get", { storeName: this.#storeName, key });
    }

    // {value: null} if missing, else {value, metadata}.
    async getWithMetadata(key) {
      const result = await op("op_kv_get_with_metadata", { storeName: this.#storeName, key });
      if (result === null || result === undefined) return { value: null };
      if (Array.isArray(result)) {
        const [value, meta] = result;
        return { value, metadata: meta?.metadata };
      }
      return { value: result.value ?? null, metadata: result.metadata };
    }

    // options: {expiration?: unix seconds, metadata?: any JSON}. Replaces the
    // key's metadata (none given -> metadata removed).
    async set(key, value, options) {
      await op("op_kv_set", {
        storeName: this.#storeName,
        key,
        value,
        expiration: plainNumber(options?.expiration ?? undefined),
        metadata: options?.metadata ?? undefined,
      });
    }

    // Changes only the metadata; the key must exist. Keeps the expiration.
    async updateMetadata(key, metadata) {
      await op("op_kv_update_metadata", { storeName: this.#storeName, key, metadata: metadata ?? undefined });
    }

    // No error if the key does not exist.
    async delete(key) {
      await op("op_kv_delete", { storeName: this.#storeName, key });
    }

    // options: {prefix?, limit? (default 100, max 1000), cursor?}
    // -> {keys: [{name, expiration?, metadata?}], listComplete, cursor?}
    async list(options) {
      return await op("op_kv_list_keys", {
        storeName: this.#storeName,
        prefix: options?.prefix ?? undefined,
        limit: plainNumber(options?.limit ?? undefined),
        cursor: options?.cursor ?? undefined,
      });
    }

    // Not in the original flora: atomically add `by` (default 1) to an
    // integer value (missing key = 0); resolves with the new number.
    async incr(key, by = 1) {
      return await op("op_kv_incr", { storeName: this.#storeName, key, by: plainNumber(by) });
    }

    // Not in the original flora: set `value` only if the current value is
    // `expected` (null = the key must not exist); resolves true if it was set.
    async compareAndSet(key, expected, value, options) {
      return await op("op_kv_cas", {
        storeName: this.#storeName,
        key,
        expected,
        value,
        expiration: plainNumber(options?.expiration ?? undefined),
        metadata: options?.metadata ?? undefined,
      });
    }
  }

  function store(name) {
    return new KvStore(name);
  }

  const kv = { store };

  provide("kv", kv);
  provide("store", store);
  provide("KvStore", KvStore);
})();
