// The page's logic: the runtime (mighty-web.js, the C API of runtime/mighty.h compiled to WebAssembly) loads
// the picked .mighty file from memory and classifies the drawing, an uploaded image or a pasted email. The
// result shows the class, the top probabilities (softmax of the model's outputs) and the latency.
'use strict';

const kInputImages = 0, kInputTokens = 1, kInputText = 2;
const $ = (id) => document.getElementById(id);
const page = { rt: null, model: 0, kind: -1, inputSize: 0, outputs: 0, side: 0, channels: 0, labels: [] };

function showError(message) {
  $('error').textContent = message;
}

function runtimeError() {
  return page.rt.UTF8ToString(page.rt._mighty_last_error());
}

// Copies `bytes` into the module's memory (freed by the caller).
function toHeap(bytes) {
  const ptr = page.rt._malloc(Math.max(bytes.length, 1));
  page.rt.HEAPU8.set(bytes, ptr);  // HEAPU8 is read after _malloc: memory may have grown
  return ptr;
}

function loadModel(bytes, name) {
  const rt = page.rt;
  if (page.model) rt._mighty_free(page.model);
  page.model = 0;
  const ptr = toHeap(bytes);
  const model = rt._mighty_load_memory(ptr, bytes.length);
  rt._free(ptr);
  if (!model) throw new Error(`${name}: ${runtimeError()}`);
  page.model = model;
  page.kind = rt._mighty_input_kind(model);
  page.inputSize = rt._mighty_input_size(model);
  page.outputs = rt._mighty_output_size(model, 0);
  page.labels = [];
  const count = rt._mighty_label_count(model);
  for (let i = 0; i < count; ++i) page.labels.push(rt.UTF8ToString(rt._mighty_label(model, i)));
  if (page.kind === kInputImages) {
    // Square images, one channel (grayscale) or three (RGB planes).
    for (const channels of [1, 3]) {
      const side = Math.round(Math.sqrt(page.inputSize / channels));
      if (side * side * channels === page.inputSize) {
        page.side = side;
        page.channels = channels;
        break;
      }
    }
    if (!page.side) throw new Error(`${name}: input of ${page.inputSize} values is not a square image`);
  }
  if (page.kind === kInputTokens)
    throw new Error(`${name}: a language model; this page classifies images and emails`);
  $('text-input').hidden = page.kind !== kInputText;
  const what = page.kind === kInputText ? 'emails' :
      `${page.side} x ${page.side} ${page.channels === 1 ? 'grayscale' : 'RGB'} images`;
  $('model-info').textContent = `${name}: ${bytes.length.toLocaleString('en')} bytes; classifies ${what} into ` +
      `${page.outputs} classes`;
}

// Runs `once` (returns the outputs) once for the result and then times it: median of up to 50 runs.
function timed(once) {
  const out = once();
  const times = [];
  const stop = performance.now() + 300;
  for (let i = 0; i < 50 && performance.now() < stop; ++i) {
    const t0 = performance.now();
    once();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { out, ms: times.length ? times[times.length >> 1] : NaN, runs: times.length };
}

function classifyPixels(pixels) {
  const rt = page.rt;
  const input = toHeap(pixels);
  const floats = rt._malloc(page.inputSize * 4), output = rt._malloc(page.outputs * 4);
  try {
    if (rt._mighty_preprocess_images(page.model, input, 1, floats) !== 0) throw new Error(runtimeError());
    const r = timed(() => {
      if (rt._mighty_run(page.model, floats, 1, output) !== 0) throw new Error(runtimeError());
      return Array.from(rt.HEAPF32.subarray(output >> 2, (output >> 2) + page.outputs));
    });
    show(r);
  } finally {
    rt._free(input);
    rt._free(floats);
    rt._free(output);
  }
}

function classifyText(text) {
  const rt = page.rt;
  const bytes = new TextEncoder().encode(text);
  const input = toHeap(bytes), output = rt._malloc(page.outputs * 4);
  try {
    const r = timed(() => {
      if (rt._mighty_run_text(page.model, input, bytes.length, output) !== 0) throw new Error(runtimeError());
      return Array.from(rt.HEAPF32.subarray(output >> 2, (output >> 2) + page.outputs));
    });
    show(r);
  } finally {
    rt._free(input);
    rt._free(output);
  }
}

function show({ out, ms, runs }) {
  const top = Math.max(...out);
  const exps = out.map((v) => Math.exp(v - top));
  const total = exps.reduce((a, b) => a + b, 0);
  const ranked = exps.map((e, i) => ({ i, p: e / total })).sort((a, b) => b.p - a.p);
  const name = (i) => page.labels[i] || `class ${i}`;
  $('class').textContent = name(ranked[0].i);
  $('class').dataset.index = String(ranked[0].i);
  $('bars').innerHTML = '';
  for (const { i, p } of ranked.slice(0, 5)) {
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.innerHTML = `<span class="name"></span><div class="fill" style="width:${Math.round(p * 200)}px"></div>` +
        `<span>${(100 * p).toFixed(1)}%</span>`;
    bar.querySelector('.name').textContent = name(i);
    $('bars').appendChild(bar);
  }
  $('latency').textContent = `latency ${ms.toFixed(3)} ms (median of ${runs} runs, batch 1, WebAssembly SIMD)`;
  document.body.dataset.state = 'classified';
}

// The pixels of `source` (a canvas or image) at the model's size: as they are when the size matches (an
// image made for the model), else scaled.
function pixelsOf(source, invert) {
  const side = page.side, channels = page.channels;
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = side;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(source, 0, 0, side, side);
  const rgba = ctx.getImageData(0, 0, side, side).data;
  const pixels = new Uint8Array(side * side * channels);
  for (let p = 0; p < side * side; ++p) {
    const r = rgba[4 * p], g = rgba[4 * p + 1], b = rgba[4 * p + 2];
    if (channels === 1) {
      const y = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
      pixels[p] = invert ? 255 - y : y;
    } else {
      for (const [c, v] of [r, g, b].entries()) pixels[c * side * side + p] = invert ? 255 - v : v;
    }
  }
  return pixels;
}

function guard(f) {
  return (...args) => {
    try {
      showError('');
      return f(...args);
    } catch (e) {
      showError(e.message);
      document.body.dataset.state = 'error';
    }
  };
}

function setUpDrawing() {
  const pad = $('pad'), ctx = pad.getContext('2d');
  const clear = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, pad.width, pad.height);
  };
  clear();
  let drawing = false;
  const at = (e) => {
    const box = pad.getBoundingClientRect();
    return [(e.clientX - box.left) * pad.width / box.width, (e.clientY - box.top) * pad.height / box.height];
  };
  pad.addEventListener('pointerdown', (e) => {
    drawing = true;
    pad.setPointerCapture(e.pointerId);
    ctx.beginPath();
    ctx.moveTo(...at(e));
  });
  pad.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 22;
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.lineTo(...at(e));
    ctx.stroke();
  });
  pad.addEventListener('pointerup', guard(() => {
    drawing = false;
    if (page.model && page.kind === kInputImages) classifyPixels(pixelsOf(pad, false));
  }));
  $('clear').addEventListener('click', clear);
}

async function fileBytes(input) {
  return new Uint8Array(await input.files[0].arrayBuffer());
}

async function main() {
  page.rt = await createMighty();
  $('status').textContent = 'Runtime ready (WebAssembly SIMD, one thread). No file leaves this page.';
  setUpDrawing();
  $('model-file').addEventListener('change', async () => {
    if (!$('model-file').files.length) return;
    const bytes = await fileBytes($('model-file'));
    guard(() => {
      loadModel(bytes, $('model-file').files[0].name);
      document.body.dataset.state = 'model';
    })();
  });
  $('image-file').addEventListener('change', async () => {
    if (!$('image-file').files.length) return;
    const file = $('image-file').files[0];
    let image;
    try {
      image = await createImageBitmap(file);
    } catch (e) {
      showError(`${file.name}: not an image the browser can read`);
      return;
    }
    guard(() => {
      if (!page.model) throw new Error('pick a .mighty model first');
      if (page.kind !== kInputImages) throw new Error('this model classifies emails: paste one below');
      const pad = $('pad');
      pad.getContext('2d').drawImage(image, 0, 0, pad.width, pad.height);
      classifyPixels(pixelsOf(image, $('invert').checked));
    })();
  });
  $('classify-text').addEventListener('click', guard(() => classifyText($('email').value)));
}

main().catch((e) => showError(`the runtime did not start: ${e.message}`));
