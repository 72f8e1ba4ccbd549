// Linked before emscripten's loader into the WebAssembly programs that run under Node.js (cmake/wasm.cmake).
// (ES5 only: emscripten's minifier rejects newer syntax here.)
// The .wasm beside the script is read here: the loader would otherwise try Node's fetch() on a file path,
// which Node.js 18+ has and which cannot read files.
Module['wasmBinary'] = require('fs').readFileSync(__filename.replace(/\.js$/, '.wasm'));
// The process's environment (MIGHTY_ISA, MIGHTY_PROGRESS, ...) becomes the program's, as for a native one.
Module['preRun'] = Module['preRun'] || [];
Module['preRun'].push(function () {
  var names = Object.keys(process.env);
  for (var i = 0; i < names.length; ++i) ENV[names[i]] = process.env[names[i]];
});
