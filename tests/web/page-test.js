#!/usr/bin/env node
// The web page (web/, built into build-wasm/web) in headless Chromium: it loads the page from disk, picks a
// .mighty file and an image file through the page's own file inputs, as a person would, and checks that
//   - the page shows the expected class (--expect: the native runtime's answer for the same pixels),
//   - no request left the page: every URL the page asked for is file:// (anything else is blocked and
//     counted), and the page's Content-Security-Policy allows no connections.
// The image is test image --index of an IDX file (.gz or plain), written as a 24-bit BMP of the model's exact
// size, which the page uses pixel for pixel. A screenshot goes to --screenshot.
// Usage: node page-test.js --page DIR/index.html --model M.mighty --images IDX --index N --expect NAME
//                          --screenshot OUT.png
// Needs playwright-core (scripts/setup with MIGHTY_SETUP_WASM=1) and Debian's chromium.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const { openOffline, parseArgs } = require('./offline-browser');

function args() {
  return parseArgs(['page', 'model', 'images', 'index', 'expect', 'screenshot'], fail);
}

function fail(message) {
  console.error(`page-test: ${message}`);
  process.exit(1);
}

// Image `index` of an IDX file of uint8 [count][rows][cols] as {rows, cols, pixels}.
function idxImage(file, index) {
  let bytes = fs.readFileSync(file);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = zlib.gunzipSync(bytes);
  if (bytes.length < 16 || bytes[2] !== 0x08 || bytes[3] !== 3) fail(`${file}: not an IDX file of uint8 images`);
  const count = bytes.readUInt32BE(4), rows = bytes.readUInt32BE(8), cols = bytes.readUInt32BE(12);
  if (index < 0 || index >= count) fail(`${file}: no image ${index} (it has ${count})`);
  if (bytes.length < 16 + count * rows * cols) fail(`${file}: truncated`);
  const start = 16 + index * rows * cols;
  return { rows, cols, pixels: bytes.subarray(start, start + rows * cols) };
}

// A 24-bit BMP (rows bottom-up, each padded to 4 bytes) of a grayscale image.
function bmp({ rows, cols, pixels }) {
  const stride = Math.ceil((cols * 3) / 4) * 4, size = 54 + stride * rows;
  const b = Buffer.alloc(size);
  b.write('BM', 0, 'ascii');
  b.writeUInt32LE(size, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(cols, 18);
  b.writeInt32LE(rows, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(stride * rows, 34);
  for (let y = 0; y < rows; ++y)
    for (let x = 0; x < cols; ++x) {
      const v = pixels[(rows - 1 - y) * cols + x], at = 54 + y * stride + 3 * x;
      b[at] = b[at + 1] = b[at + 2] = v;
    }
  return b;
}

async function main() {
  const a = args();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mighty-page-'));
  const image = path.join(tmp, `test-${a.index}.bmp`);
  fs.writeFileSync(image, bmp(idxImage(a.images, Number(a.index))));
  const { browser, page, outside, seen, problems } = await openOffline({ width: 980, height: 620 }, fail);
  try {
    await page.goto('file://' + path.resolve(a.page));
    await page.waitForFunction(() => /ready/.test(document.getElementById('status').textContent), null,
                               { timeout: 30000 });
    await page.setInputFiles('#model-file', path.resolve(a.model));
    await page.waitForFunction(() => document.body.dataset.state === 'model' ||
                                     document.body.dataset.state === 'error', null, { timeout: 30000 });
    await page.setInputFiles('#image-file', image);
    await page.waitForFunction(() => document.body.dataset.state === 'classified' ||
                                     document.body.dataset.state === 'error', null, { timeout: 30000 });
    const shown = await page.textContent('#class');
    const error = await page.textContent('#error');
    const latency = await page.textContent('#latency');
    await page.screenshot({ path: a.screenshot, fullPage: true });
    if (problems.length) fail(`the page threw: ${problems[0]}`);
    if (error) fail(`the page shows an error: ${error}`);
    if (outside.length) fail(`${outside.length} request(s) left the page, the first ${outside[0]}`);
    if (shown !== a.expect) fail(`the page shows '${shown}', expected '${a.expect}'`);
    console.log(`page-test: the page shows '${shown}' for image ${a.index}; ${latency}; ` +
                `${seen.length} requests, all file://, none outside; screenshot ${a.screenshot}`);
  } finally {
    await browser.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => fail(e.message.split('\n')[0]));
