// flora's bundler driver, run by `deno run --allow-read=<project>` and nothing else allowed:
// Deno.bundle honours deno's permissions, so a module or an asset outside the project folder
// (an absolute path, `..`, a symlink, /proc, another guild's files) is refused by deno itself.
// Prints one JSON object on stdout: {success, errors, warnings, js, map}.
//
// A script is one classic script (mini-racer evaluates scripts, not modules): format "iife". esbuild
// cannot put top-level await into an IIFE, so a module graph that uses it (and only then: every other
// script is bundled exactly as before) is bundled as an ES module, whose body is flat (every import is
// inlined), and that body becomes an async function handed to the runtime, which awaits it during the
// load: `__floraTopLevel(async () => {<body>\n});` (the body starts on the first line, so the lines of
// the bundle are esbuild's). The entry's `export { … }` clause, the last statement esbuild prints, is
// dropped: nothing imports a bot script.
const [entry, outputPath] = Deno.args;
const TOP_LEVEL_PREFIX = "__floraTopLevel(async () => {";
const options = {
  entrypoints: [entry],
  outputPath,
  write: false,
  format: "iife",
  platform: "browser",
  sourcemap: "external",
};
const tla = (m) => /^Top-level .* currently not supported with the "iife" output format/.test(m.text || "");
let result = await Deno.bundle(options);
let topLevelAwait = false;
if (!result.success && result.errors.length && result.errors.every(tla)) {
  topLevelAwait = true;
  result = await Deno.bundle({ ...options, format: "esm" });
}
// other errors with it: those are the script's problems (top-level await is not one)
const errors = result.errors.some((m) => !tla(m)) ? result.errors.filter((m) => !tla(m)) : result.errors;
const out = { success: result.success, errors, warnings: result.warnings, js: null, map: null };
for (const file of result.outputFiles ?? []) {
  if (file.path.endsWith(".map")) out.map = file.text();
  else out.js = file.text();
}
if (topLevelAwait && out.success && out.js !== null) {
  let body = out.js.replace(/(^|\n)export \{[^{}]*\};\s*$/, "$1");
  const hashbang = body.startsWith("#!") ? body.slice(0, body.indexOf("\n") + 1) : "";
  body = body.slice(hashbang.length);
  const AsyncFunction = (async () => {}).constructor;
  try {
    new AsyncFunction(body); // compiled, never run: is the body a function body now?
    out.js = `${hashbang}${TOP_LEVEL_PREFIX}${body}});\n`;
  } catch (err) {
    const text = /import\.meta/.test(String(err && err.message))
      ? "import.meta cannot be used in a script with top-level await (flora runs a script as a classic " +
        "script, where import.meta does not exist)"
      : `the script uses top-level await, and its ES module bundle could not be made a script: ${err}`;
    out.success = false;
    out.js = null;
    out.errors = [{ text, location: null, notes: [] }];
  }
}
console.log(JSON.stringify(out));
