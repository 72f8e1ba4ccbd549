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

module.exports = { openOffline };
