#!/usr/bin/env node
// A compress or tune run's report.html in headless Chromium: every point the run's report.json holds is drawn,
// inside its chart, and nothing is fetched from outside the page. Expected counts come from report.json, not
// from the page: each model with a size (and each with a batch-1 latency) is one point; each training run's
// epochs with a validation result; the cascade's 21-point test curve plus the chosen threshold, when it was
// measured; for mighty tune, every trial on each trial chart and every layer of the sensitivity chart.
// A full-page screenshot goes to --screenshot.
// Usage: node report-test.js --run DIR --screenshot OUT.png
// Needs playwright-core (scripts/setup with MIGHTY_SETUP_WASM=1) and Debian's chromium.
'use strict';
const fs = require('fs');
const path = require('path');
const { openOffline, parseArgs } = require('./offline-browser');

function fail(message) {
  console.error(`report-test: ${message}`);
  process.exit(1);
}

function args() {
  return parseArgs(['run', 'screenshot'], fail);
}

// What report.json says the page must draw: chart id -> number of points.
function expected(report) {
  if (report.trials) {
    // mighty tune: every trial on both trial charts, every layer on the sensitivity chart.
    const want = { tune_bytes: report.trials.length, tune_latency: report.trials.length };
    if (report.sensitivity && report.sensitivity.length) want.tune_sensitivity = report.sensitivity.length;
    return want;
  }
  const quality = report.models.some((m) => 'bits_per_char' in m) ? 'bits_per_char' : 'accuracy';
  const want = {
    quality_bytes: report.models.filter((m) => quality in m && 'bytes' in m).length,
    quality_latency: report.models.filter((m) => quality in m && 'latency_ms_b1' in m).length,
  };
  let epochs = 0;
  const count = (history) => {
    for (const h of history || []) if (h.validation) epochs += 1;
  };
  for (const s of report.stages) {
    if (s.kind === 'distill') for (const r of s.runs || []) count(r.history);
    if (s.kind === 'prune') count(s.history);
  }
  if (epochs > 0) want.training = epochs;
  const cascade = report.verify && report.verify.cascade;
  if (cascade && !cascade.unavailable) {
    want.cascade_accuracy = cascade.curve_test.length + 1;
    want.cascade_cost = cascade.curve_test.length + 1;
  }
  return want;
}

async function main() {
  const a = args();
  const report = JSON.parse(fs.readFileSync(path.join(a.run, 'report.json'), 'utf8'));
  const want = expected(report);
  const { browser, page, outside, problems } = await openOffline({ width: 1560, height: 900 }, fail);
  try {
    await page.goto('file://' + path.resolve(a.run, 'report.html'));
    // Per chart: its points that have a size on screen and lie inside the chart's box.
    const drawn = await page.evaluate(() => {
      const out = {};
      for (const svg of document.querySelectorAll('svg.chart')) {
        const box = svg.getBoundingClientRect();
        let n = 0, outsideBox = 0;
        for (const c of svg.querySelectorAll('circle.point')) {
          const b = c.getBoundingClientRect();
          if (b.width <= 0 || b.height <= 0) continue;
          const cx = b.x + b.width / 2, cy = b.y + b.height / 2;
          if (cx < box.x || cx > box.x + box.width || cy < box.y || cy > box.y + box.height) outsideBox += 1;
          else n += 1;
        }
        out[svg.dataset.chart] = { n, outsideBox };
      }
      return out;
    });
    await page.screenshot({ path: a.screenshot, fullPage: true });
    if (problems.length) fail(`the page threw: ${problems[0]}`);
    if (outside.length) fail(`${outside.length} request(s) left the page, the first ${outside[0]}`);
    for (const [id, n] of Object.entries(want)) {
      if (!drawn[id]) fail(`no chart '${id}' (report.json has ${n} points for it)`);
      if (drawn[id].outsideBox) fail(`chart '${id}': ${drawn[id].outsideBox} point(s) outside the chart`);
      if (drawn[id].n !== n) fail(`chart '${id}' draws ${drawn[id].n} points, report.json has ${n}`);
    }
    const summary = Object.entries(want).map(([id, n]) => `${id} ${n}`).join(', ');
    console.log(`report-test: every point drawn (${summary}); nothing fetched; screenshot ${a.screenshot}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => fail(e.message.split('\n')[0]));
