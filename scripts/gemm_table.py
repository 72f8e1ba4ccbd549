"""Prints the int8 GEMM benchmark as one table: GOPS per implementation, % of the measured peak, ours/oneDNN."""
import json
import sys
from collections import defaultdict


def main(path):
    data = json.load(open(path))
    ctx = data["context"]
    gops = {}
    read_gbps = {}  # "N256/K784" -> one core's read bandwidth over a buffer of the layer's weight bytes
    repetitions = max((b.get("repetitions", 1) for b in data["benchmarks"]), default=1)
    for b in data["benchmarks"]:
        if b.get("aggregate_name", "median") != "median" or "error_occurred" in b:
            continue
        name = (b["run_name"] if "run_name" in b else b["name"]).replace("/real_time", "")
        if name.startswith("peak/read/"):
            read_gbps[name[len("peak/read/"):]] = b["GBps"]
        else:
            gops[name] = b["GOPS"]
    peak_vnni = gops.get("peak/avx512vnni")
    peak_avx2 = gops.get("peak/avx2")
    print(f"host: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} cpus @ {ctx.get('mhz_per_cpu', '?')} MHz; "
          f"medians of {repetitions} repetitions; GOPS = 2*M*N*K/s")
    if peak_vnni:
        print(f"measured peak, 1 core: avx512vnni {peak_vnni:.0f} GOPS, avx2 (vpmaddwd+vpaddd) {peak_avx2:.0f} GOPS")
    if read_gbps:
        print("batch-1 roofline, 1 core reading the weight bytes: " +
              ", ".join(f"{nk} {v:.0f} GB/s" for nk, v in read_gbps.items()))
    rows = defaultdict(dict)
    for name, v in gops.items():
        if name.startswith("peak/"):
            continue
        impl, rest = name.split("/", 1)
        rows[rest][impl] = v
    cols = ["mighty_avx512vnni_s32", "mighty_avx512vnni_f32", "onednn_s32", "onednn_f32", "mighty_avx2_s32",
            "torch_fp32", "eigen_fp32"]
    short = ["vnni s32", "vnni f32", "dnnl s32", "dnnl f32", "avx2 s32", "torch f32", "eigen f32"]
    header = (f"{'shape':<24}" + "".join(f"{s:>10}" for s in short) +
              f"{'%peak':>7}{'avx2%':>7}{'%read':>7}{'vs dnnl':>9}")
    print(header)
    print("-" * len(header))

    def key(shape):
        m = int(shape.split("/")[0][1:])
        n = int(shape.split("/")[1][1:])
        k = int(shape.split("/")[2][1:])
        t = int(shape.split("/")[3][1:])
        return (t, m, n, k)

    for shape in sorted(rows, key=key):
        r = rows[shape]
        line = f"{shape:<24}" + "".join(f"{r[c]:>10.1f}" if c in r else f"{'-':>10}" for c in cols)
        threads = key(shape)[0]
        ours = r.get("mighty_avx512vnni_s32")
        pct = f"{100 * ours / (peak_vnni * threads):>6.0f}%" if ours and peak_vnni else f"{'-':>7}"
        avx2 = r.get("mighty_avx2_s32")
        pct2 = f"{100 * avx2 / (peak_avx2 * threads):>6.0f}%" if avx2 and peak_avx2 else f"{'-':>7}"
        m = key(shape)[1]
        bw = read_gbps.get(shape.split("/", 1)[1].rsplit("/", 1)[0]) if m == 1 and threads == 1 else None
        pct3 = f"{100 * ours / 2 / bw:>6.0f}%" if ours and bw else f"{'-':>7}"
        ratio = f"{ours / r['onednn_s32']:>8.2f}x" if ours and r.get("onednn_s32") else f"{'-':>9}"
        print(line + pct + pct2 + pct3 + ratio)
    print("%peak: vnni s32 against the single-core vpdpbusd peak x threads; avx2%: avx2 s32 against its own peak; "
          "%read (M = 1, 1 thread): vnni s32 at 1 MAC per weight byte against the core's read bandwidth over "
          "that many bytes; vs dnnl: vnni s32 / dnnl s32")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build-bench/bench_gemm.json")
