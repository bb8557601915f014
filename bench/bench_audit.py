"""Benchmark: `cnntool audit` against the same checks done by hand with CleanVision and imagededup.

On one generated folder of 512x512 JPEG photo crops (mosaics of four native-resolution crops of
scikit-image's colour photos, plus crops of the Hubble deep field) with planted problems (dark,
over-exposed, moderately blurred, flat-colour low-information, grayscale stored as RGB, exact
copies, resized and re-encoded copies), in one run:

1. by hand: ``Imagelab(folder).find_issues()`` then ``PHash().find_duplicates(folder,
   max_distance_threshold=D)``, in a fresh Python process;
2. ``cnntool audit folder --max-distance D`` with an empty cache (first run);
3. the same command again on the unchanged folder (second run, from the cache).

Each is timed as a whole process (interpreter start and imports included), in wall time and in
CPU time (user + system of the process and its workers: the fairer figure when other work shares
the two cores), and the by-hand run's compute time alone (imports excluded) is printed too.
Then the findings are compared on the checks the tools share, and what cnntool finds beyond
them (its documented departures) is listed.

Usage: python bench/bench_audit.py [--images 400] [--max-distance 4] [--keep DIR]

``--precision`` measures something else: the false-alarm rate and the recall of the image checks
on planted sets of 300 photo crops (275 clean crops of every photo scikit-image ships, among
them soft content such as the ``cell`` micrograph, the ``retina`` fundus photo and the
motion-blurred ``clock``; 25 planted problems: moderate blur, dark, washed out, over-exposed,
flat, gray stored as RGB; see ``tests/audit/photo_set.py``), for cnntool now, cnntool's absolute
blur rule alone (``-t blurry_relative=0``, the rule before the folder comparison) and CleanVision:
``python bench/bench_audit.py --precision [--seeds 0 1 2] [--no-cleanvision]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The checks CleanVision and cnntool both decide, by CleanVision's definition.
SHARED_CHECKS = ("dark", "light", "blurry", "low_information", "grayscale", "odd_size", "odd_aspect_ratio",
                 "exact_duplicates")

#: How many images of each planted kind (the rest are clean crops).
PLANTED = {"dark": 10, "overexposed": 10, "blurred": 10, "lowinfo": 5, "grayrgb": 5, "exactdup": 10, "neardup": 10}


def make_folder(folder: Path, images: int, seed: int = 0) -> None:
    """Write the benchmark folder: clean 512x512 crops and the planted problems."""
    import cv2
    import numpy as np
    from skimage import data

    rng = np.random.default_rng(seed)
    sources = [getattr(data, n)()[:, :, :3] for n in
               ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")]
    hubble = sources[4]

    def tile():
        src = sources[rng.integers(len(sources))]
        h, w = src.shape[:2]
        y, x = rng.integers(0, h - 256 + 1), rng.integers(0, w - 256 + 1)
        t = src[y:y + 256, x:x + 256]
        return t[:, ::-1] if rng.random() < 0.5 else t

    def mosaic():
        return np.vstack([np.hstack([tile(), tile()]), np.hstack([tile(), tile()])])

    def save(name, rgb, quality=90):
        cv2.imwrite(str(folder / name), np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n_clean = images - sum(PLANTED.values())
    n_hubble = n_clean // 6
    clean = []
    for i in range(n_clean - n_hubble):
        im = mosaic()
        save(f"mosaic_{i:04d}.jpg", im)
        clean.append((f"mosaic_{i:04d}.jpg", im))
    for i in range(n_hubble):
        y, x = rng.integers(0, hubble.shape[0] - 511), rng.integers(0, hubble.shape[1] - 511)
        save(f"hubble_{i:04d}.jpg", hubble[y:y + 512, x:x + 512])
    for i in range(PLANTED["dark"]):
        save(f"dark_{i}.jpg", (mosaic() * 0.25).astype(np.uint8))
    for i in range(PLANTED["overexposed"]):
        save(f"overexposed_{i}.jpg", np.clip(mosaic() * 2.2 + 40, 0, 255).astype(np.uint8))
    for i in range(PLANTED["blurred"]):
        save(f"blurred_{i}.jpg", cv2.GaussianBlur(mosaic(), (0, 0), 2.5))
    for i in range(PLANTED["lowinfo"]):  # flat colours: imagededup's hashes make them all one "duplicate"
        save(f"lowinfo_{i}.jpg", np.full((512, 512, 3), rng.integers(0, 256, 3), np.uint8))
    for i in range(PLANTED["grayrgb"]):
        gray = cv2.cvtColor(mosaic(), cv2.COLOR_RGB2GRAY)
        save(f"grayrgb_{i}.jpg", np.repeat(gray[:, :, None], 3, axis=2))
    for i in range(PLANTED["exactdup"]):
        name, _ = clean[i * 7]
        shutil.copy(folder / name, folder / f"exactdup_{i}.jpg")
    for i in range(PLANTED["neardup"]):
        _, im = clean[i * 7 + 3]
        small = cv2.resize(im, (384, 384), interpolation=cv2.INTER_AREA)
        save(f"neardup_{i}.jpg", cv2.resize(small, (512, 512)), quality=75)


def by_hand(folder: str, out_json: str, max_distance: int) -> None:
    """What a user runs without cnntool; writes the findings and the compute time to out_json."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from cleanvision import Imagelab
    from imagededup.methods import PHash

    started = time.perf_counter()
    lab = Imagelab(data_path=folder)
    lab.find_issues(verbose=False)
    duplicates = PHash(verbose=False).find_duplicates(image_dir=folder, max_distance_threshold=max_distance)
    seconds = time.perf_counter() - started
    flags = {}
    for check in SHARED_CHECKS + ("near_duplicates",):
        column = f"is_{check}_issue"
        flags[check] = sorted(os.path.basename(p) for p in lab.issues.index[lab.issues[column]])
    near = sorted(name for name, found in duplicates.items() if found)
    with open(out_json, "w") as f:
        json.dump({"seconds": seconds, "cleanvision": flags, "imagededup_near": near,
                   "imagededup_pairs": sum(len(v) for v in duplicates.values()) // 2}, f)


def timed(cmd: list[str], **kwargs) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and CPU seconds (user + system, the process and everything it waited for)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def cnntool_findings(stdout: str) -> tuple[dict, dict]:
    flags: dict[str, set] = {}
    summary = {}
    for line in stdout.splitlines():
        record = json.loads(line)
        if record["check"] == "summary":
            summary = record
        else:
            flags.setdefault(record["check"], set()).add(os.path.basename(record["path"]))
    return {k: sorted(v) for k, v in flags.items()}, summary


def precision(seeds, cleanvision: bool) -> None:
    """False alarms and recall on planted photo sets: cnntool, its absolute blur rule, CleanVision."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.audit.photo_set import PLANTED_CHECK, make_photo_set, score

    from cnntool.audit.config import build_config
    from cnntool.audit.pipeline import run_audit
    from cnntool.data.sources import resolve_inputs

    totals: dict[str, dict] = {}
    for seed in seeds:
        work = Path(tempfile.mkdtemp(prefix="bench_audit_precision_"))
        try:
            truth = make_photo_set(work, seed=seed)
            runs = {}
            for name, thresholds in (("cnntool", {}), ("cnntool, absolute blur rule", {"blurry_relative": 0})):
                result = run_audit(resolve_inputs([str(work)]), build_config(thresholds=thresholds), workers=2)
                runs[name] = result.records
            if cleanvision:
                runs["CleanVision"] = _cleanvision_records(work)
            for name, records in runs.items():
                t = totals.setdefault(name, {"alarms": 0, "blurry": 0, "clean": 0, "recall": {}})
                blurry, any_check = score(records, truth, check="blurry"), score(records, truth)
                t["blurry"] += len(blurry["false_alarms"])
                t["alarms"] += len(any_check["false_alarms"])
                t["clean"] += blurry["clean"]
                for kind, (hit, n) in any_check["recall"].items():
                    old = t["recall"].get(kind, (0, 0))
                    t["recall"][kind] = (old[0] + hit, old[1] + n)
                alarms = sorted({truth[n][1] for n in blurry["false_alarms"]})
                flagged = {Path(r["path"]).name for r in records if r["check"] == "blurry"}
                missed = sorted(src for n, (kind, src) in truth.items() if kind == "blurred" and n not in flagged)
                print(f"seed {seed} {name:<28} blurry false alarms {len(blurry['false_alarms']):3d}/{blurry['clean']}"
                      f" ({', '.join(alarms) or '-'}); blurred crops missed: {', '.join(missed) or '-'}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'':<30}{'blurry FA':>14}{'any-check FA':>15}  recall per planted kind")
    for name, t in totals.items():
        recall = ", ".join(f"{k} {h}/{n}" for k, (h, n) in t["recall"].items())
        print(f"{name:<30}{t['blurry']:5d}/{t['clean']} {100 * t['blurry'] / t['clean']:4.1f}%"
              f"{t['alarms']:5d}/{t['clean']} {100 * t['alarms'] / t['clean']:4.1f}%  {recall}")
    print("(any-check FA: a clean crop with any image finding; clean cell crops are dark by CleanVision's "
          f"definition too. Planted checks: {PLANTED_CHECK})")


def _cleanvision_records(folder: Path) -> list[dict]:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from cleanvision import Imagelab

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        lab = Imagelab(data_path=str(folder))
        lab.find_issues(verbose=False)
    checks = ("dark", "light", "blurry", "low_information", "grayscale", "odd_size", "odd_aspect_ratio")
    return [{"path": path, "check": check} for check in checks
            for path in lab.issues.index[lab.issues[f"is_{check}_issue"]]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--max-distance", type=int, default=4)
    parser.add_argument("--keep", help="build the folder here and keep it")
    parser.add_argument("--by-hand", nargs=2, metavar=("FOLDER", "OUT_JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--precision", action="store_true", help="false alarms and recall on planted photo sets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="--precision: one set per seed")
    parser.add_argument("--no-cleanvision", action="store_true", help="--precision: skip CleanVision")
    args = parser.parse_args()
    if args.by_hand:
        by_hand(*args.by_hand, args.max_distance)
        return
    if args.precision:
        precision(args.seeds, not args.no_cleanvision)
        return

    work = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    folder = Path(args.keep) if args.keep else work / "images"
    cache = work / "cache"
    try:
        make_folder(folder, args.images)
        n = len(list(folder.iterdir()))
        load = os.getloadavg()[0]
        print(f"folder: {n} JPEGs, 512x512; load average before: {load:.1f} on {os.cpu_count()} cores")

        hand_json = work / "by_hand.json"
        hand_s, hand_cpu, proc = timed([sys.executable, __file__, "--by-hand", str(folder), str(hand_json),
                              "--max-distance", str(args.max_distance)])
        if proc.returncode != 0:
            sys.exit(f"by-hand run failed:\n{proc.stderr[-2000:]}")
        hand = json.loads(hand_json.read_text())

        cnntool = shutil.which("cnntool") or str(Path(sys.executable).with_name("cnntool"))
        cmd = [cnntool, "audit", str(folder), "--format", "jsonl", "--cache", str(cache),
               "--max-distance", str(args.max_distance), "--quiet"]
        first_s, first_cpu, first = timed(cmd)
        second_s, second_cpu, second = timed(cmd)
        if first.returncode not in (0, 1) or second.returncode not in (0, 1):
            sys.exit(f"cnntool failed:\n{first.stderr[-2000:]}{second.stderr[-2000:]}")
        ours, summary = cnntool_findings(first.stdout)
        ours_again, summary_again = cnntool_findings(second.stdout)
        load_after = os.getloadavg()[0]

        print(f"\n{'run':<42}{'wall s':>8}{'images/s':>10}{'CPU s':>8}")
        print(f"{'by hand: CleanVision + imagededup PHash':<42}{hand_s:8.2f}{n / hand_s:10.1f}{hand_cpu:8.2f}"
              f"   (compute only, imports excluded: {hand['seconds']:.2f} s wall)")
        print(f"{'cnntool audit, first run (empty cache)':<42}{first_s:8.2f}{n / first_s:10.1f}{first_cpu:8.2f}"
              f"   (inside the run: {summary['seconds']:.2f} s)")
        print(f"{'cnntool audit, second run (unchanged)':<42}{second_s:8.2f}{n / second_s:10.1f}{second_cpu:8.2f}"
              f"   (inside the run: {summary_again['seconds']:.2f} s)")
        print(f"\nthroughput, first run vs by hand:  {hand_s / first_s:5.2f}x wall (goal >= 2x); "
              f"{hand_cpu / first_cpu:.2f}x CPU time; {hand['seconds'] / summary['seconds']:.2f}x wall without "
              f"start-up and imports")
        print(f"second run vs first run:           {first_s / second_s:5.2f}x wall (goal >= 10x); "
              f"{first_cpu / second_cpu:.1f}x CPU time; "
              f"{summary['seconds'] / max(summary_again['seconds'], 1e-3):.0f}x inside the run")
        print(f"load average after: {load_after:.1f} (other work on the machine inflates every time above)")

        print(f"\nfindings on the shared checks (CleanVision's definitions; "
              f"near duplicates: PHash <= {args.max_distance})")
        print(f"{'check':<20}{'by hand':>8}{'cnntool':>8}  {'same':<5} difference")
        equal = True
        for check in SHARED_CHECKS:
            theirs = set(hand["cleanvision"][check])
            mine = set(ours.get(check, []))
            missed = sorted(theirs - mine)
            extra = sorted(mine - theirs)
            equal &= not missed
            note = ""
            if missed:
                note += f"missed: {', '.join(missed[:5])}"
            if extra:
                note += f" cnntool also: {len(extra)} ({', '.join(extra[:4])}{'...' if len(extra) > 4 else ''})"
            print(f"{check:<20}{len(theirs):8d}{len(mine):8d}  {'yes' if theirs == mine else 'no':<5} {note}")
        mine = set(ours.get("near_duplicates", [])) | set(ours.get("exact_duplicates", []))
        for name, theirs in (("near (imagededup)", set(hand["imagededup_near"])),
                             ("near (CleanVision)", set(hand["cleanvision"]["near_duplicates"]))):
            uniform = {f for f in theirs - mine if f.startswith("lowinfo")}
            missed = sorted(theirs - mine - uniform)
            extra = sorted(mine - theirs)
            equal &= not missed
            print(f"{name:<20}{len(theirs):8d}{len(mine):8d}  {'yes' if theirs == mine else 'no':<5} "
                  + (f"by hand also: {len(uniform)} flat-colour images (kept out on purpose) " if uniform else "")
                  + (f"missed: {', '.join(missed[:5])} " if missed else "")
                  + (f"cnntool also: {len(extra)} ({', '.join(extra[:4])})" if extra else ""))
        print(f"(near duplicates by hand: imagededup PHash <= {args.max_distance}, {hand['imagededup_pairs']} pairs; "
              f"CleanVision: imagehash pHash equal; cnntool: PHash <= {args.max_distance}, exact groups included)")
        print(f"same findings from the cache: {'yes' if ours == ours_again else 'NO'}")
        planted_found = {kind: sum(1 for f in ours.get(check, []) if f.startswith(kind))
                         for kind, check in (("blurred", "blurry"), ("overexposed", "light"), ("dark", "dark"),
                                             ("grayrgb", "grayscale"), ("lowinfo", "low_information"))}
        planted_theirs = {kind: sum(1 for f in hand["cleanvision"][check] if f.startswith(kind))
                          for kind, check in (("blurred", "blurry"), ("overexposed", "light"), ("dark", "dark"),
                                              ("grayrgb", "grayscale"), ("lowinfo", "low_information"))}
        print("\nplanted problems found (cnntool / by hand / planted): " + ", ".join(
            f"{k} {planted_found[k]}/{planted_theirs[k]}/{PLANTED[k]}" for k in planted_found))
        print(f"every by-hand finding on the shared checks also found by cnntool (uniform images apart): "
              f"{'yes' if equal else 'NO'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
