// ONNX Runtime beside mighty: serves one ONNX model with onnxruntime-node (CPU, all graph optimizations, the
// given thread count) to the process that started it, over its stdin/stdout. mighty builds it into its
// binaries (onnx_io/onnxruntime.cc) and starts it as `node -e <this file> --model M.onnx ...`, with
// NODE_PATH = <data cache>/npm-onnxruntime-1.30.0/node_modules (installed by scripts/setup).
//
//   --model M.onnx  [--threads 1]  [--optimized OPT.onnx: where ORT writes the graph it optimized]
//
// Protocol: the runner first writes one JSON line {"version", "input", "output", "input_type"}. Then each
// request is a JSON line {"op", "dtype": "float32"|"int64", "shape": [...], "bytes": N} followed by N bytes
// of the input tensor (little-endian), and each reply one JSON line, followed by bytes where it says so:
//   "run"                -> {"shape": [...], "bytes": M} and M bytes of the float32 output
//   "time" ("runs": K,   -> {"ms": [K numbers]}: each session.run on the input timed alone (after one
//    "model": "main" |      warm-up run); "identity" times a model of one Identity node on the same input,
//    "identity")            the runner's own cost per call (tensor in, tensor out, Node's binding)
// Errors: {"error": "one line"} and the runner goes on; a broken protocol ends it (exit 1, one line on stderr).
'use strict';

function fail(msg) {
  process.stderr.write(`ort-runner: ${msg}\n`);
  process.exit(1);
}

function args() {
  const a = {threads: 1};
  const argv = process.argv.slice(require.main === module ? 2 : 1);
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) fail(`bad argument '${argv[i]}'`);
    a[argv[i].slice(2)] = argv[i + 1];
  }
  if (!a.model) fail('--model is required');
  a.threads = Number(a.threads);
  if (!Number.isInteger(a.threads) || a.threads < 1) fail('--threads must be a positive integer');
  return a;
}

// A minimal ONNX model: "input" [d0, d1, ...] of the element type -> Identity -> "output" (protobuf by hand).
function identityModel(rank, elemType) {
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
  const dims = [];
  for (let d = 0; d < rank; ++d) dims.push(...bytes(1, str(2, `d${d}`)));
  const type = bytes(1, [...int(1, elemType), ...bytes(2, dims)]);  // TypeProto.tensor_type
  const value = (name) => [...str(1, name), ...bytes(2, type)];
  const node = [...str(1, 'input'), ...str(2, 'output'), ...str(4, 'Identity')];
  const graph = [...bytes(1, node), ...str(2, 'g'), ...bytes(11, value('input')), ...bytes(12, value('output'))];
  const opset = [...str(1, ''), ...int(2, 17)];
  return Uint8Array.from([...int(1, 8), ...bytes(7, graph), ...bytes(8, opset)]);
}

// Reads lines and byte blocks from a stream.
class Reader {
  constructor(stream) {
    this.chunks = [];
    this.length = 0;
    this.ended = false;
    this.wake = null;
    const notify = () => {
      if (this.wake) {
        const w = this.wake;
        this.wake = null;
        w();
      }
    };
    stream.on('data', (c) => {
      this.chunks.push(c);
      this.length += c.length;
      notify();
    });
    stream.on('end', () => {
      this.ended = true;
      notify();
    });
  }
  joined() {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks.length ? this.chunks[0] : Buffer.alloc(0);
  }
  take(n) {
    const b = this.joined();
    this.chunks = [b.subarray(n)];
    this.length -= n;
    return b.subarray(0, n);
  }
  async until(ready) {
    while (!ready()) {
      if (this.ended) return false;
      await new Promise((resolve) => (this.wake = resolve));
    }
    return true;
  }
  async line() {
    let at = -1;
    if (!(await this.until(() => (at = this.joined().indexOf(10)) >= 0))) return null;
    return this.take(at + 1).toString('utf8', 0, at);
  }
  async bytes(n) {
    if (!(await this.until(() => this.length >= n))) fail(`input ended inside a ${n}-byte block`);
    return this.take(n);
  }
}

function reply(header, data) {
  process.stdout.write(JSON.stringify(header) + '\n');
  if (data) process.stdout.write(data);
}

async function main() {
  const a = args();
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    fail(`cannot load onnxruntime-node (scripts/setup installs it): ${e.message.split('\n')[0]}`);
  }
  const options = {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  };
  let session;
  try {
    session = await ort.InferenceSession.create(
        a.model, a.optimized ? {...options, optimizedModelFilePath: a.optimized} : options);
  } catch (e) {
    fail(`${a.model}: ${e.message.split('\n')[0]}`);
  }
  const identities = {};
  const identity = async (rank, dtype) => {
    const key = `${rank}:${dtype}`;
    if (!identities[key]) {
      identities[key] = await ort.InferenceSession.create(identityModel(rank, dtype === 'int64' ? 7 : 1), options);
    }
    return identities[key];
  };
  const inputName = session.inputNames[0], outputName = session.outputNames[0];
  const version = ort.env && ort.env.versions ? ort.env.versions.node || ort.env.versions.common : 'unknown';
  reply({version, input: inputName, output: outputName});
  const reader = new Reader(process.stdin);
  for (;;) {
    const line = await reader.line();
    if (line === null) break;
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      fail(`a request that is not JSON: ${line.slice(0, 80)}`);
    }
    if (!Number.isInteger(req.bytes) || req.bytes < 0) fail(`a request without "bytes": ${line.slice(0, 80)}`);
    const raw = await reader.bytes(req.bytes);
    try {
      if (!Array.isArray(req.shape) || req.shape.some((d) => !Number.isInteger(d) || d < 0)) {
        throw new Error('"shape" must be a list of sizes');
      }
      const count = req.shape.reduce((x, y) => x * y, 1);
      const size = req.dtype === 'int64' ? 8 : req.dtype === 'float32' ? 4 : 0;
      if (size === 0) throw new Error(`unknown dtype '${req.dtype}'`);
      if (count * size !== raw.length) throw new Error(`${raw.length} bytes for shape [${req.shape}]`);
      const copy = new Uint8Array(raw).buffer;  // aligned
      const data = req.dtype === 'int64' ? new BigInt64Array(copy) : new Float32Array(copy);
      const tensor = new ort.Tensor(req.dtype, data, req.shape);
      if (req.op === 'run') {
        const y = (await session.run({[inputName]: tensor}))[outputName];
        if (y.type !== 'float32') throw new Error(`output '${outputName}' is ${y.type}, not float32`);
        reply({shape: y.dims, bytes: y.data.byteLength}, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
      } else if (req.op === 'time') {
        const s = req.model === 'identity' ? await identity(req.shape.length, req.dtype) : session;
        const feed = {[s.inputNames[0]]: tensor};
        await s.run(feed);  // warm-up
        const ms = [];
        for (let r = 0; r < (req.runs || 0); ++r) {
          const t0 = process.hrtime.bigint();
          await s.run(feed);
          ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        reply({ms});
      } else {
        throw new Error(`unknown op '${req.op}'`);
      }
    } catch (e) {
      reply({error: e && e.message ? e.message.split('\n')[0] : String(e)});
    }
  }
}

main().catch((e) => fail(e && e.message ? e.message.split('\n')[0] : String(e)));
