"""Prints the int8 GEMM benchmark as one table: GOPS per implementation, % of the measured peak, ours/oneDNN.

Usage: gemm_table.py RUN.json [RUN.json ...]  (several runs: the median across them)
"""
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    """GOPS / GB/s per benchmark of one run (its median when it has repetitions) and the run's context."""
    data = json.load(open(path))
    values = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name", "median") != "median" or "error_occurred" in b:
            continue
        name = (b["run_name"] if "run_name" in b else b["name"]).replace("/real_time", "")
        values[name] = b["GBps"] if name.startswith("peak/read/") else b["GOPS"]
    repetitions = max((b.get("repetitions", 1) for b in data["benchmarks"]), default=1)
    return values, data["context"], repetitions


def main(paths):
    # Several runs (rounds spread over minutes): the median across them, so a noisy phase of the machine (a
    # neighbour on the same physical core) does not decide a number.
    runs = [load(p) for p in paths]
    ctx, repetitions = runs[0][1], runs[0][2]
    per_name = defaultdict(list)
    for values, _, _ in runs:
        for name, v in values.items():
            per_name[name].append(v)
    gops, read_gbps = {}, {}  # read_gbps: "N256/K784" -> one core's read bandwidth over the layer's weight bytes
    for name, vs in per_name.items():
        if name.startswith("peak/read/"):
            read_gbps[name[len("peak/read/"):]] = statistics.median(vs)
        else:
            gops[name] = statistics.median(vs)
    peak_amx = gops.get("peak/amx")
    peak_vnni = gops.get("peak/avx512vnni")
    peak_avx2 = gops.get("peak/avx2")
    # mighty's best path on this machine: the AMX rows where the CPU has AMX, else AVX-512 VNNI.
    best = "mighty_amx_s32" if any(n.startswith("mighty_amx_s32/") for n in gops) else "mighty_avx512vnni_s32"
    peak_best = peak_amx if best == "mighty_amx_s32" else peak_vnni
    print(f"host: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} cpus @ {ctx.get('mhz_per_cpu', '?')} MHz; "
          f"{len(runs)} round(s) of {repetitions} repetition(s), median of all; GOPS = 2*M*N*K/s")
    if peak_vnni:
        amx = f"amx (tdpbusd) {peak_amx:.0f} GOPS, " if peak_amx else ""
        print(f"measured peak, 1 core: {amx}avx512vnni {peak_vnni:.0f} GOPS, avx2 (vpmaddwd+vpaddd) {peak_avx2:.0f} GOPS")
    tile_loop = gops.get("peak/avx2_tile_loop")
    if tile_loop and peak_avx2:
        print(f"avx2 6x8 tile loop with its operands in L1: {tile_loop:.0f} GOPS ({100 * tile_loop / peak_avx2:.0f}% of "
              "the avx2 peak: the ceiling of that path's GEMM)")
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
    if best == "mighty_amx_s32":
        cols = ["mighty_amx_s32", "mighty_amx_f32"] + cols
        short = ["amx s32", "amx f32"] + short
    header = (f"{'shape':<24}" + "".join(f"{s:>10}" for s in short) +
              f"{'%peak':>7}{'avx2%':>7}{'%read':>7}{'vs t1':>7}{'vs dnnl':>9}")
    print(header)
    print("-" * len(header))

    def key(shape):
        m = int(shape.split("/")[0][1:])
        n = int(shape.split("/")[1][1:])
        k = int(shape.split("/")[2][1:])
        t = int(shape.split("/")[3][1:])
        return (t, m, n, k)

    def round_ratio(num, den):
        """num / den within each run (measured minutes apart from other runs), the median across runs."""
        ratios = [v[num] / v[den] for v, _, _ in runs if v.get(num) and v.get(den)]
        return statistics.median(ratios) if ratios else None

    for shape in sorted(rows, key=key):
        r = rows[shape]
        line = f"{shape:<24}" + "".join(f"{r[c]:>10.1f}" if c in r else f"{'-':>10}" for c in cols)
        threads = key(shape)[0]
        ours = r.get(best)
        pct = f"{100 * ours / (peak_best * threads):>6.0f}%" if ours and peak_best else f"{'-':>7}"
        avx2 = r.get("mighty_avx2_s32")
        pct2 = f"{100 * avx2 / (peak_avx2 * threads):>6.0f}%" if avx2 and peak_avx2 else f"{'-':>7}"
        m = key(shape)[1]
        bw = read_gbps.get(shape.split("/", 1)[1].rsplit("/", 1)[0]) if m == 1 and threads == 1 else None
        pct3 = f"{100 * ours / 2 / bw:>6.0f}%" if ours and bw else f"{'-':>7}"
        ours_name = best + "/" + shape
        scale = round_ratio(ours_name, best + "/" + shape.rsplit("/", 1)[0] + "/t1")
        scaling = f"{scale:>6.2f}x" if threads > 1 and scale else f"{'-':>7}"
        versus = round_ratio(ours_name, "onednn_s32/" + shape)
        ratio = f"{versus:>8.2f}x" if versus else f"{'-':>9}"
        print(line + pct + pct2 + pct3 + scaling + ratio)
    ours = "amx s32" if best == "mighty_amx_s32" else "vnni s32"
    unit = "tdpbusd" if best == "mighty_amx_s32" else "vpdpbusd"
    print(f"%peak: {ours} against the single-core {unit} peak x threads; avx2%: avx2 s32 against its own peak; "
          f"%read (M = 1, 1 thread): {ours} at 1 MAC per weight byte against the core's read bandwidth over "
          f"that many bytes; vs t1: {ours} at this thread count / at 1 thread; vs dnnl: {ours} / dnnl s32 (both "
          "ratios taken within each run, then the median across runs)")


if __name__ == "__main__":
    main(sys.argv[1:] or ["build-bench/bench_gemm.json"])
