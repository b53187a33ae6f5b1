"""50k images at scale, simulated on one machine (issue 11, item 7).

Builds an ``ilsvrc``-layout dataset of ``--images`` ids from the real sample
photos (hard links, see :mod:`pipeline.bench.scale_data`), then runs
``foveabench`` itself in subprocesses (clean + sign, a small random-weight
network at a small input size) and measures what the orchestration costs:

1. ``foveabench prepare``: manifest build time and peak RSS;
2. ``foveabench run`` to the end: wall time, model time (the attack rows'
   ``seconds``), orchestration overhead per image, the driver's peak RSS
   (``VmHWM`` of the driver process, polled), files under the run directory,
   MLflow rows (SQLite store) and artifacts;
3. the summaries (``write_summaries``) and ``foveabench report RUN``, timed;
4. resume: a second run SIGKILLed (its whole process group) once about
   ``--kill-at`` of its attack shards exist, then rerun: which shard units the
   rerun computed, whether any was already complete at the kill, and how
   much in-flight work the kill lost.

Everything is read from the CLI's output and the files on disk, so the script
keeps working while the storage layout changes. Results are printed beside the
issue's targets and written to ``<out>/scale_bench.json``.

    python scripts/scale_bench.py --images 2000 --shard-size 100
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import yaml

from pipeline.bench import watch as watching
from pipeline.bench.scale_data import build_scaled
from pipeline.bench.watch import Watched, profile_summary

ROOT = Path(__file__).resolve().parents[1]

TARGETS = {"manifest_s": 120.0, "driver_rss_gb": 2.0, "report_s": 60.0, "lost_shards": 1.0}
OWNED = ".scale-bench"  # marks output directories this script may delete
SHARD = re.compile(r"shard-(\d+)")
MODEL = re.compile(r"model=([^/]+)")


# --- what a run left on disk ------------------------------------------------------------
def attack_commits(run_dir: Path) -> dict[tuple[str, int], int]:
    """(model, shard) -> mtime in ns of each attack shard's commit record. Records exist
    while the stage runs (compaction folds them into data.parquet at its end)."""
    out = {}
    for p in (run_dir / "_commits" / "attacks").rglob("shard-*.ok"):
        unit = unit_of(p.relative_to(run_dir).as_posix())
        if unit:
            out[unit] = p.stat().st_mtime_ns
    return out


def unit_of(rel: str) -> tuple[str, int] | None:
    """(model, shard) of a shard file's relative path."""
    shard, model = SHARD.search(rel), MODEL.search(rel)
    return (model.group(1), int(shard.group(1))) if shard and model else None


class CommitClock:
    """Polled while a run goes (never asks for a kill): when each attack shard committed."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.seen: dict[tuple[str, int], int] = {}

    def __call__(self) -> bool:
        for unit, ns in attack_commits(self.run_dir).items():
            self.seen.setdefault(unit, ns)
        return False


def count_objects(directory: Path) -> dict[str, Any]:
    by_top: Counter[str] = Counter()
    size = 0
    for p in directory.rglob("*"):
        if p.is_file() or p.is_symlink():
            rel = p.relative_to(directory).parts
            by_top[rel[0] if len(rel) > 1 else "."] += 1
            size += p.lstat().st_size
    return {"files": sum(by_top.values()), "bytes": size, "by_dir": dict(sorted(by_top.items()))}


def mlflow_rows(output_dir: Path) -> dict[str, Any]:
    db = output_dir / "mlflow.db"
    rows: dict[str, Any] = {}
    if db.is_file():
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            for table in ("runs", "metrics", "latest_metrics", "params", "tags"):
                try:
                    rows[table] = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                except sqlite3.Error as exc:
                    rows[table] = f"n/a ({exc})"
    arts = output_dir / "mlartifacts"
    rows["artifacts"] = count_objects(arts) if arts.is_dir() else {"files": 0, "bytes": 0}
    return rows


def attack_rows(run_dir: Path) -> dict[str, Any]:
    """Rows, distinct image ids and the summed model time of every attack table on disk."""
    table = pads.dataset(run_dir / "attacks", format="parquet", partitioning="hive").to_table(
        columns=["image_id", "seconds", "clean_correct", "success", "n_forward"]
    )
    ids = table.column("image_id")
    return {
        "rows": table.num_rows,
        "distinct_images": len(ids.unique()),
        "model_s": float(sum(v for v in table.column("seconds").to_pylist() if v)),
        "clean_correct": int(sum(bool(v) for v in table.column("clean_correct").to_pylist())),
        "forwards": int(sum(v or 0 for v in table.column("n_forward").to_pylist())),
    }


# --- the experiments --------------------------------------------------------------------
def fresh_dir(path: Path) -> Path:
    if path.exists():
        if not (path / OWNED).is_file():
            raise SystemExit(
                f"{path} exists and was not made by scale_bench.py; pick another --out"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / OWNED).touch()
    return path


def write_config(args: argparse.Namespace, dataset: Path, output_dir: Path, name: str) -> Path:
    cfg = {
        "name": name,
        "dataset": {"layout": "ilsvrc", "root": str(dataset), "limit": None},
        "models": [{args.model: {"input_size": [args.input_size, args.input_size]}}],
        "attacks": ["sign"],
        "criterion": {"top_k": args.top_k},
        "tasks": ["clean", "min_perturbation"],
        "output_dir": str(output_dir),
        "mlflow": {"tracking_uri": None, "experiment": "scale"},
        "ray": {"address": None, "gpus_per_actor": 1, "actors_per_model": args.actors},
        "batch_size": args.batch_size,
        "shard_size": args.shard_size,
    }
    path = output_dir / "scale.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def watch(
    cmd: list[str], log_path: Path, kill_when: Any = None, profile: Path | None = None
) -> Watched:
    """``cmd`` run from this checkout, with the MLflow store and Ray the config names."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    print(f"$ {' '.join(cmd)}   (log: {log_path})", flush=True)
    return watching.watch(cmd, log_path, cwd=ROOT, env=env, kill_when=kill_when, profile=profile)


def phases(w: Watched, shards: dict[tuple[str, int], int]) -> dict[str, float | None]:
    """Seconds from the driver's start to each landmark of its output and its shard files."""
    rel = sorted((ns / 1e9 - w.started) for ns in shards.values())
    at = {k: w.first(p) for k, p in (("manifest", r"^manifest: "), ("actors", r"^ray: \d+"))}
    report = w.first(r"^report: ")
    return {
        "manifest_done": at["manifest"][0] if at["manifest"] else None,
        "actors_started": at["actors"][0] if at["actors"] else None,
        "first_shard": rel[0] if rel else None,
        "last_shard": rel[-1] if rel else None,
        "report_done": report[0] if report else None,
        "exit": w.wall_s,
    }


def full_run(args: argparse.Namespace, dataset: Path, out: Path) -> dict[str, Any]:
    output_dir = fresh_dir(out / "full")
    config = write_config(args, dataset, output_dir, f"scale-n{args.images}")
    profile = output_dir / "driver-profile.txt" if args.profile else None
    run_dir = output_dir / f"scale-n{args.images}"
    clock = CommitClock(run_dir)
    w = watch(cli("run", str(config)), output_dir / "run.log", kill_when=clock, profile=profile)
    if w.rc != 0:
        raise SystemExit(f"foveabench run failed (exit {w.rc}); see {output_dir / 'run.log'}")
    shards = clock.seen
    rows = attack_rows(run_dir)
    rate = w.first(r"attack stage: .*?: ([\d.]+) images/s per actor")
    images = args.images
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "wall_s": w.wall_s,
        "phases_s": phases(w, shards),
        "attack_rows": rows,
        "model_s": rows["model_s"],
        "actor_busy_s": images / float(rate[1].group(1)) if rate else None,
        "overhead_ms_per_image": 1e3 * (w.wall_s - rows["model_s"]) / images,
        "overhead_vs_actor_ms_per_image": 1e3
        * (w.wall_s - images / float(rate[1].group(1)))
        / images
        if rate
        else None,
        "driver_peak_rss": w.driver_peak_rss,
        "load_avg": w.load,
        "process_peak_rss": w.tree_peak_rss,
        "objects_run_dir": count_objects(run_dir),
        "objects_output_dir": count_objects(output_dir),
        "mlflow": mlflow_rows(output_dir),
    }
    if profile:
        result["profile"] = profile_summary(profile)
    code = (
        "import sys, time; from pathlib import Path; "
        "from pipeline.summary.write import write_summaries; t = time.perf_counter(); "
        "write_summaries(Path(sys.argv[1])); print(f'summaries: {time.perf_counter() - t:.2f} s')"
    )
    s = watch([sys.executable, "-c", code, str(run_dir)], output_dir / "summaries.log")
    result["summaries_s"] = s.wall_s if s.rc == 0 else None
    result["summaries_peak_rss"] = s.driver_peak_rss
    r = watch(cli("report", str(run_dir)), output_dir / "report.log")
    result["report_s"] = r.wall_s if r.rc == 0 else None
    result["report_peak_rss"] = r.driver_peak_rss
    return result


class KillMidShard:
    """True half a shard-time after the ``after``-th attack shard file landed.

    Killing right as a shard lands would flatter the resume (nothing in flight);
    half the mean interval between landings puts the kill mid-shard.
    """

    def __init__(self, run_dir: Path, after: int) -> None:
        self.run_dir, self.after = run_dir, after

    def __call__(self) -> bool:
        landed = sorted(ns / 1e9 for ns in attack_commits(self.run_dir).values())
        if len(landed) < self.after:
            return False
        pace = (landed[-1] - landed[0]) / (len(landed) - 1) if len(landed) > 1 else 0.0
        return time.time() >= landed[-1] + 0.5 * pace


def resume_run(args: argparse.Namespace, dataset: Path, out: Path) -> dict[str, Any]:
    output_dir = fresh_dir(out / "resume")
    name = f"scale-n{args.images}"
    config = write_config(args, dataset, output_dir, name)
    run_dir = output_dir / name
    n_shards = math.ceil(args.images / args.shard_size)
    kill = KillMidShard(run_dir, max(1, math.ceil(args.kill_at * n_shards)))
    first = watch(cli("run", str(config)), output_dir / "killed.log", kill_when=kill)
    killed = first.started + first.killed_at if first.killed_at is not None else None
    before = attack_commits(run_dir)  # committed at the kill: never to be computed again
    second = watch(cli("run", str(config)), output_dir / "resumed.log")
    done = second.first(r"computed (\d+) model-shards")
    computed = int(done[1].group(1)) if done else None
    complete = len(before)
    last_write = max(before.values(), default=0) / 1e9
    first_write = min(before.values(), default=0) / 1e9
    pace = (last_write - first_write) / max(1, complete - 1)
    resume_line = second.first(r"^resume: .*")
    return {
        "n_shard_units": n_shards,
        "killed": first.killed_at is not None,
        "killed_at_s": first.killed_at,
        "complete_at_kill": complete,
        "recomputed_units": computed,
        # every unit the rerun computed beyond those not committed at the kill
        "recomputed_complete_units": None if computed is None else computed - (n_shards - complete),
        "lost_s": (killed - last_write) if killed and before else None,
        "shard_pace_s": pace,
        "lost_shards": (killed - last_write) / pace if killed and before and pace else None,
        "resume_line": resume_line[1].group(0) if resume_line else None,
        "resumed_wall_s": second.wall_s,
        "resumed_rc": second.rc,
        "resumed_driver_peak_rss": second.driver_peak_rss,
        "attack_rows_after_resume": attack_rows(run_dir),
    }


# --- reporting --------------------------------------------------------------------------
def _gb(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def verdict(value: float | None, target: float) -> str:
    return "n/a" if value is None else ("met" if value <= target else "NOT met")


def figures(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, target verdict) rows of the report."""
    n, man, ds = res["images"], res["manifest"], res["dataset"]
    rows = [
        ("dataset build", f"{ds['seconds']:.1f} s ({ds['link']}s, cached: {ds['cached']})", ""),
        ("manifest (foveabench prepare)", f"{man['wall_s']:.1f} s, peak RSS {_gb(man['peak_rss'])}",
         f"<= 120 s: {verdict(man['wall_s'], TARGETS['manifest_s'])}"),
    ]  # fmt: skip
    if full := res.get("full"):
        rows += [
            ("pipeline wall (foveabench run)", f"{full['wall_s']:.1f} s", ""),
            ("  phases, s from start", str(full["phases_s"]), ""),
            ("model time (attack rows' seconds)", f"{full['model_s']:.1f} s", ""),
            ("actor busy (images / per-actor rate)", f"{full['actor_busy_s'] or 0:.1f} s", ""),
            ("overhead (wall - model) / images", f"{full['overhead_ms_per_image']:.2f} ms", ""),
            ("overhead (wall - actor busy) / images",
             f"{full['overhead_vs_actor_ms_per_image'] or float('nan'):.2f} ms", ""),
            ("attack rows", str(full["attack_rows"]), ""),
            ("driver peak RSS (VmHWM)", _gb(full["driver_peak_rss"]),
             f"<= 2 GB: {verdict(full['driver_peak_rss'] / 1e9, TARGETS['driver_rss_gb'])}"),
            ("other processes, peak RSS",
             str({k: _gb(v) for k, v in full["process_peak_rss"].items()}), ""),
            ("files under the run dir", str(full["objects_run_dir"]), ""),
            ("files under output_dir (with MLflow)", str(full["objects_output_dir"]["files"]), ""),
            ("MLflow rows and artifacts", str(full["mlflow"]), ""),
            ("summaries (write_summaries)", f"{full['summaries_s']} s", ""),
            ("foveabench report RUN", f"{full['report_s']} s",
             f"<= 60 s: {verdict(full['report_s'], TARGETS['report_s'])}"),
        ]  # fmt: skip
        rows += [
            (f"  driver profile {share:5.1%}", frame, "")
            for frame, share in full.get("profile", [])
        ]
    if rs := res.get("resume"):
        lost = rs["lost_shards"]
        rows += [
            ("resume: killed at", f"{rs['killed_at_s']} s ({rs['killed']})", ""),
            ("  shard units committed at kill",
             f"{rs['complete_at_kill']} of {rs['n_shard_units']}", ""),
            ("  units the rerun computed", str(rs["recomputed_units"]), ""),
            ("  of them complete at the kill", str(rs["recomputed_complete_units"]),
             f"0: {'met' if rs['recomputed_complete_units'] == 0 else 'NOT met'}"),
            ("  in-flight work lost", f"{rs['lost_s']} s = {lost} shard-times",
             f"<= 1 per actor: {verdict(lost, TARGETS['lost_shards'])}"),
            ("  runner's resume line", str(rs["resume_line"]), ""),
            ("  rerun wall", f"{rs['resumed_wall_s']:.1f} s", ""),
            ("  attack rows after resume", str(rs["attack_rows_after_resume"]), f"{n} distinct"),
        ]  # fmt: skip
    return rows


def print_report(res: dict[str, Any]) -> None:
    print(f"\n== scale bench: {res['images']} images, {res['settings']}")
    for name, value, target in figures(res):
        print(f"{name:<42} {value}" + (f"   [target {target}]" if target else ""))


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", type=int, default=50_000)
    p.add_argument("--source", type=Path, default=ROOT.parent / "shared/data/imagenet-sample")
    p.add_argument("--cache-dir", type=Path, default=Path("/tmp/foveabench-scale"))
    p.add_argument("--out", type=Path, help="default: <cache-dir>/runs/n<images>")
    p.add_argument("--model", default="untrained_timm:test_convnext3")
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--shard-size", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--actors", type=int, help="ray.actors_per_model (default: the pipeline's)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--kill-at", type=float, default=0.5, help="share of attack shards")
    p.add_argument("--skip-full", action="store_true")
    p.add_argument("--skip-resume", action="store_true")
    p.add_argument("--profile", action="store_true", help="py-spy the full run's driver")
    args = p.parse_args()
    out = args.out or args.cache_dir / "runs" / f"n{args.images}"
    out.mkdir(parents=True, exist_ok=True)
    ds = build_scaled(args.source, args.cache_dir, args.images)
    prep = fresh_dir(out / "prepare")
    w = watch(
        cli("prepare", "--layout", "ilsvrc", "--root", str(ds.root), "--out", str(prep)),
        prep / "prepare.log",
    )
    res: dict[str, Any] = {
        "images": args.images,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {
            k: v
            for k, v in vars(args).items()
            if k in ("model", "input_size", "shard_size", "batch_size", "actors", "top_k")
        },
        "machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
        "git": subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "dataset": asdict(ds) | {"root": str(ds.root)},
        "manifest": {
            "wall_s": w.wall_s,
            "peak_rss": w.driver_peak_rss,
            "line": next((line for _, line in w.lines if line.startswith("manifest:")), None),
        },
    }
    if not args.skip_full:
        res["full"] = full_run(args, ds.root, out)
    if not args.skip_resume:
        res["resume"] = resume_run(args, ds.root, out)
    res["machine"]["load_avg_end"] = os.getloadavg()
    (out / "scale_bench.json").write_text(json.dumps(res, indent=2, default=str))
    print_report(res)
    print(f"\nwrote {out / 'scale_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
