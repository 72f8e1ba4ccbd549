// Headless Debian Chromium through playwright-core for the page tests, with every request that is not file://
// blocked and recorded: `outside` lists them (a page that fetches anything fails its test), `seen` lists all.
'use strict';

async function openOffline(viewport, fail) {
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    fail('playwright-core not found (run MIGHTY_SETUP_WASM=1 scripts/setup; NODE_PATH must reach it)');
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu'],
  });
  const outside = [], seen = [];
  const context = await browser.newContext({ viewport });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    seen.push(url);
    if (url.startsWith('file://')) return route.continue();
    outside.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('websocket', (ws) => outside.push(ws.url()));
  return { browser, page, outside, seen, problems };
}

// `--key value` pairs of the command line, `required` keys checked; `fail` reports a problem and exits.
function parseArgs(required, fail) {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) fail(`bad argument '${argv[i]}'`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of required) if (!(k in out)) fail(`--${k} is required`);
  return out;
}

module.exports = { openOffline, parseArgs };
