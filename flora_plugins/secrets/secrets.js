// secrets.get(name) for guild scripts: the secrets plugin's extension of the SDK.
//
// The real value never enters the isolate: get() returns a placeholder,
// __FLORA_SECRET_<encodeURIComponent(name)>__ (placeholders.py), that the runtime replaces in fetch()
// URLs and headers, for the secret's allowed hosts only. The runtime publishes the guild's secret
// names as `__floraSecretNames` (an array, flora_isolate_globals): unknown names give undefined, as in flora.
(function floraSecrets() {
  "use strict";
  const g = globalThis;
  const provide = g.__floraProvide;
  if (typeof provide !== "function") return; // the sdk plugin is disabled: there is no SDK to extend

  provide("secrets", {
    get(name) {
      if (typeof name !== "string" || !name.length) {
        throw new TypeError("secret name must be a non-empty string");
      }
      const known = g.__floraSecretNames;
      if (Array.isArray(known) && !known.includes(name)) return undefined;
      return `__FLORA_SECRET_${encodeURIComponent(name)}__`;
    },
  });
})();
