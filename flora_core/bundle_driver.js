// flora's bundler driver, run by `deno run --allow-read=<project>` and nothing else allowed:
// Deno.bundle honours deno's permissions, so a module or an asset outside the project folder
// (an absolute path, `..`, a symlink, /proc, another guild's files) is refused by deno itself.
// Prints one JSON object on stdout: {success, errors, warnings, js, map}.
const [entry, outputPath] = Deno.args;
const result = await Deno.bundle({
  entrypoints: [entry],
  outputPath,
  write: false,
  format: "iife",
  platform: "browser",
  sourcemap: "external",
});
const out = { success: result.success, errors: result.errors, warnings: result.warnings, js: null, map: null };
for (const file of result.outputFiles ?? []) {
  if (file.path.endsWith(".map")) out.map = file.text();
  else out.js = file.text();
}
console.log(JSON.stringify(out));
