// ONNX Runtime beside mighty: runs an ONNX model with onnxruntime-node (CPU, all graph optimizations, the
// given thread count) on a file of float32 examples and writes the outputs, the optimized graph (for its op
// types) and timings. Installed by scripts/setup (NODE_PATH = <data cache>/npm-onnxruntime-1.30.0/node_modules).
//
// node ort-runner.js --model M.onnx --input X.bin --shape 1,28,28 [--out Y.bin] [--optimized OPT.onnx]
//                    [--threads 1] [--batch 256] [--latency-runs 0] [--throughput-batch 64]
//                    [--throughput-runs 20]
// X.bin: count x prod(shape) float32 (little-endian); Y.bin: the model's output for every example, float32,
// in order, evaluated in batches of --batch. Prints one JSON object: ONNX Runtime's version, the output
// size per example, batch-1 latencies in ms (each run of the session timed alone), batch-N throughput
// (examples/s), and the runner's own overhead: the same timed call on a one-Identity model of the same input.
// Any failure: one line on stderr, exit 1.
'use strict';
const fs = require('fs');

function fail(msg) {
  process.stderr.write(`ort-runner: ${msg}\n`);
  process.exit(1);
}

function args() {
  const a = {threads: 1, batch: 256, 'latency-runs': 0, 'throughput-batch': 64, 'throughput-runs': 20};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) fail(`bad argument '${argv[i]}'`);
    a[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ['model', 'input', 'shape']) if (!a[k]) fail(`--${k} is required`);
  for (const k of ['threads', 'batch', 'latency-runs', 'throughput-batch', 'throughput-runs']) {
    a[k] = Number(a[k]);
    if (!Number.isInteger(a[k]) || a[k] < 0) fail(`--${k} must be a non-negative integer`);
  }
  a.shape = a.shape.split(',').map(Number);
  if (a.shape.some((d) => !Number.isInteger(d) || d < 1)) fail(`--shape must be positive integers`);
  return a;
}

// A minimal ONNX model: input "input" float [batch, ...shape] -> Identity -> "output" (protobuf by hand).
function identityModel(shape) {
  const varint = (n) => {
    const out = [];
    do {
      let b = n % 128;
      n = Math.floor(n / 128);
      if (n > 0) b |= 0x80;
      out.push(b);
    } while (n > 0);
    return out;
  };
  const field = (num, wire, payload) => [...varint(num * 8 + wire), ...payload];
  const bytes = (num, arr) => field(num, 2, [...varint(arr.length), ...arr]);
  const str = (num, s) => bytes(num, [...Buffer.from(s)]);
  const int = (num, v) => field(num, 0, varint(v));
  const dims = [bytes(1, str(2, 'batch')), ...shape.map((d) => bytes(1, int(1, d)))].flat();
  const type = bytes(1, [...int(1, 1), ...bytes(2, dims)]);  // TypeProto.tensor_type {elem_type, shape}
  const value = (name) => [...str(1, name), ...bytes(2, type)];
  const node = [...str(1, 'input'), ...str(2, 'output'), ...str(4, 'Identity')];
  const graph = [...bytes(1, node), ...str(2, 'g'), ...bytes(11, value('input')), ...bytes(12, value('output'))];
  const opset = [...str(1, ''), ...int(2, 17)];
  return Uint8Array.from([...int(1, 8), ...bytes(7, graph), ...bytes(8, opset)]);
}

async function main() {
  const a = args();
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    fail(`cannot load onnxruntime-node (run scripts/setup): ${e.message}`);
  }
  const options = {
    executionProviders: ['cpu'],
    intraOpNumThreads: Math.max(1, a.threads),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  };
  const per = a.shape.reduce((x, y) => x * y, 1);
  const raw = fs.readFileSync(a.input);
  if (raw.length % (4 * per) !== 0) fail(`${a.input}: ${raw.length} bytes is not a whole number of examples`);
  const count = raw.length / (4 * per);
  const x = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  const session = await ort.InferenceSession.create(
      a.model, a.optimized ? {...options, optimizedModelFilePath: a.optimized} : options);
  const feed = (s, start, n) => ({[s.inputNames[0]]: new ort.Tensor('float32', x.slice(start * per, (start + n) * per), [n, ...a.shape])});
  // Outputs of every example.
  let outSize = 0;
  if (a.out) {
    const chunks = [];
    for (let i = 0; i < count; i += Math.max(1, a.batch)) {
      const n = Math.min(Math.max(1, a.batch), count - i);
      const r = await session.run(feed(session, i, n));
      const y = r[session.outputNames[0]].data;
      outSize = y.length / n;
      chunks.push(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
    }
    const tmp = `${a.out}.tmp.${process.pid}`;
    fs.writeFileSync(tmp, Buffer.concat(chunks));
    fs.renameSync(tmp, a.out);
  }
  const time = async (s, n, runs) => {
    const input = feed(s, 0, Math.min(n, count));
    await s.run(input);  // warm-up
    const t = [];
    for (let r = 0; r < runs; ++r) {
      const t0 = process.hrtime.bigint();
      await s.run(input);
      t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return t;
  };
  const result = {version: ort.env.versions ? ort.env.versions.node : 'unknown', count, output_size: outSize};
  if (a['latency-runs'] > 0 && count > 0) {
    const identity = await ort.InferenceSession.create(identityModel(a.shape), options);
    result.latency_ms = await time(session, 1, a['latency-runs']);
    result.overhead_ms = await time(identity, 1, a['latency-runs']);
    const tb = Math.min(a['throughput-batch'], count);
    const runs = await time(session, tb, Math.max(1, a['throughput-runs']));
    runs.sort((p, q) => p - q);
    result.throughput_batch = tb;
    result.throughput = tb / (runs[Math.floor(runs.length / 2)] / 1e3);
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => fail(e && e.message ? e.message.split('\n')[0] : String(e)));
