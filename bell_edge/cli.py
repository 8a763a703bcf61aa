"""The `bell-edge` command line: parse, call, print. No logic of its own.

Exit codes: 0 success, 1 a check that failed (an accuracy gate), 2 bad input (one line, no
traceback).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from bell_edge.errors import CheckFailed, InputError


class _Command(click.Command):
    """A command whose output folders (`--out`, `--dir`, `--annotations`), if the command created
    them and then failed, are not left behind empty (`files.tidied_on_failure`)."""

    def invoke(self, ctx: click.Context):
        import contextlib

        from bell_edge.files import tidied_on_failure

        with contextlib.ExitStack() as stack:
            for name in ("out", "folder", "annotations"):
                if ctx.params.get(name) is not None:
                    stack.enter_context(tidied_on_failure(ctx.params[name]))
            return super().invoke(ctx)


class _Group(click.Group):
    """A click group that turns our error types into one-line messages and exit codes."""

    command_class = _Command

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except click.BadParameter as exc:  # a value out of range or not a choice: one line
            click.echo(f"error: {exc.format_message()}", err=True)
            ctx.exit(2)
        except CheckFailed as exc:
            click.echo(f"failed: {exc}", err=True)
            ctx.exit(1)
        except BrokenPipeError as exc:
            if not _stdout_closed():  # another pipe (a worker process): an error like any other
                click.echo(f"error: {exc.strerror or exc}", err=True)
                ctx.exit(2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
            ctx.exit(141)  # the reader went away (`| head`): stop quietly, as SIGPIPE does
        except OSError as exc:  # the system refused a file: read-only folder, no space, ...
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:  # finished files are whole; a resumable job resumes
            click.echo("interrupted", err=True)
            ctx.exit(130)


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no fd (a test's captured stream), no poll
        return False


TASK_HELP = (
    "Label tasks, comma-separated: superdiagnostic, diagnostic, form, rhythm, all "
    "(several combine). [default: the layout's own labels]"
)


def _print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=1, default=str))


# Ranges of the numeric options: a value outside them is exit 2 and one line.
POSITIVE_INT = click.IntRange(min=1)
COUNT = click.IntRange(min=0)
POSITIVE = click.FloatRange(min=0, min_open=True)
FRACTION = click.FloatRange(0, 1, min_open=True)  # (0, 1]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bell-edge")
def main() -> None:
    """BELL 12-lead ECG models: pretrain, fine-tune, compress, deploy to a bedside monitor."""
    if not sys.stderr.isatty():  # a log (nohup, tee): progress bars redraw every 30 s, not 0.1 s
        os.environ.setdefault("TQDM_MININTERVAL", "30")
        os.environ.setdefault("TQDM_MAXINTERVAL", "30")  # tqdm's monitor would redraw at 10 s


@main.group(cls=_Group)
def data() -> None:
    """Look at ECG folders and records; prepare the preprocessed cache."""


@data.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def data_inspect(path: Path, as_json: bool) -> None:
    """Summarize a dataset folder, or one record (path with or without .hea)."""
    from tqdm import tqdm

    from bell_edge.data.inspect import inspect_folder, inspect_record

    if path.is_dir():
        progress = None if as_json else _progress(tqdm, "reading")
        report = inspect_folder(path, progress=progress)
        if as_json:
            _print_json(report)
        else:
            _show_folder(report)
        if report["readable"] == 0:
            raise InputError(f"{path}: none of its {report['records']} records is readable")
        return
    if not path.exists() and not path.with_suffix(".hea").exists():
        raise InputError(f"{path}: no such file or folder")
    report = inspect_record(path)
    if as_json:
        _print_json(report)
        return
    click.echo(f"record   {report['record']}")
    click.echo(f"rate     {report['fs']:g} Hz, {report['samples']} samples, {report['seconds']} s")
    click.echo(f"leads    {' '.join(report['source_leads'])}")
    click.echo(f"present  {' '.join(report['leads_present'])} (canonical 12-lead order)")
    click.echo(f"units    {', '.join(report['units'])}")
    sig = report["signal"]
    click.echo(
        f"signal   min {sig['min']:.3f}, max {sig['max']:.3f}, mean std {sig['mean_std']:.3f}"
    )
    for line in report["comments"][:8]:
        click.echo(f"# {line}")


def _progress(tqdm, desc: str):
    def wrap(iterable, total):
        return tqdm(iterable, total=total, desc=desc, unit="rec", leave=False, file=sys.stderr)

    return wrap


def _show_folder(r: dict) -> None:
    click.echo(
        f"{r['path']}: layout {r['layout']}, {r['records']} records, {r['readable']} readable"
    )
    click.echo("splits   " + ", ".join(f"{k} {v}" for k, v in r["splits"].items()))
    click.echo("rates    " + ", ".join(f"{k} Hz x{v}" for k, v in r["rates_hz"].items()))
    click.echo("leads    " + ", ".join(f"{k} leads x{v}" for k, v in r["leads"].items()))
    s = r["seconds"]
    click.echo(f"seconds  min {s['min']:.1f}, median {s['median']:.1f}, max {s['max']:.1f}")
    if r["labels_by_split"]:
        classes = r["classes"]
        shown = classes if len(classes) <= 8 else classes[:8]
        click.echo("labels   " + "".join(f"{c:>10}" for c in ["split", *shown]))
        for split, counts in r["labels_by_split"].items():
            click.echo(
                "         " + "".join(f"{v:>10}" for v in [split, *(counts[c] for c in shown)])
            )
        if len(classes) > len(shown):
            click.echo(f"         ... {len(classes) - len(shown)} more classes (see --json)")
    for reason, count in r["dropped_by_layout"].items():
        if count:
            click.echo(f"dropped  {count} records: {reason}")
    for p in r["problems"][:20]:
        click.echo(f"problem  {p['error']}")
    if len(r["problems"]) > 20:
        click.echo(f"problem  ... {len(r['problems']) - 20} more (see --json)")


@data.command("prepare")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Cache folder.")
@click.option("--fs", type=POSITIVE_INT, default=100, show_default=True, help="Target rate, Hz.")
@click.option("--seconds", type=POSITIVE, default=10.0, show_default=True, help="Window length.")
@click.option("--workers", type=POSITIVE_INT, default=None,
              help="Processes (default: all cores, at most 8).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace a cache of other data or settings.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def data_prepare(path, out, fs, seconds, workers, force, as_json) -> None:
    """Preprocess a dataset once into a memory-mapped cache (a no-op when nothing changed)."""
    from bell_edge.config import PreprocessConfig
    from bell_edge.data.cache import prepare

    cfg = PreprocessConfig(fs=fs, window_s=seconds)
    result = prepare(path, out, cfg, workers=workers, force=force, progress=not as_json)
    cache = result.cache
    summary = {
        "cache": str(cache.root),
        "reused": result.reused,
        "windows": len(cache),
        "records": cache.meta["records"],
        "shape": cache.meta["shape"],
        "splits": {s: int((cache.splits == s).sum()) for s in sorted(set(cache.splits))},
        "skipped": result.skipped,
        "padded_windows": cache.meta.get("padded_windows"),  # None: a cache from before the count
        "preprocess_hash": cache.meta["preprocess_hash"],
    }
    if as_json:
        _print_json(summary)
        return
    verb = "unchanged, reused" if result.reused else "written"
    click.echo(
        f"{cache.root}: {verb}; {summary['windows']} windows of {summary['records']} records"
    )
    if summary["padded_windows"]:
        click.echo(f"note: {summary['padded_windows']} windows zero-padded to {seconds:g} s "
                   "(their records are shorter)", err=True)  # fmt: skip
    for item in result.skipped:
        click.echo(f"skipped  {item['error']}")


@data.command("download")
@click.argument("dataset", type=click.Choice(["ptbxl"]))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Target folder.")
@click.option("--rate", type=click.Choice(["100", "500", "all"]), default="100", show_default=True,
              help="Signal folders: records100, records500 or both.")  # fmt: skip
@click.option("--mirror", default=None, help="Base URL of a mirror of the release.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def data_download(dataset, out, rate, mirror, as_json) -> None:
    """Fetch PTB-XL from PhysioNet, verified against its SHA256 sums (resumable; networked)."""
    from tqdm import tqdm

    from bell_edge.data.download import PTBXL_URL, download

    bars = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=f"download {dataset}", unit="file", file=sys.stderr))
        bars[0].n = done
        bars[0].refresh()

    counts = download(out, rate, base_url=mirror or PTBXL_URL, progress=progress)
    for bar in bars:
        bar.close()
    if as_json:
        _print_json({"out": str(out), **counts})
        return
    click.echo(
        f"{out}: {counts['files']} files verified ({counts['downloaded']} downloaded, "
        f"{counts['verified_before']} already there); try `bell-edge data inspect {out}`"
    )


@main.command()
@click.option("--data", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Dataset or cache; repeat for a corpus of several (labels ignored, only the "
                   "train split of folders that have splits).")  # fmt: skip
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--method", type=click.Choice(["bell", "byol"]), default=None, help="[default: bell]")
@click.option("--gamma", type=click.FloatRange(0, 1), default=None,
              help="Intra-lead weight. [default: 0.8]")  # fmt: skip
@click.option("--epochs", type=POSITIVE_INT, default=None)
@click.option("--batch-size", type=POSITIVE_INT, default=None)
@click.option("--lr", type=POSITIVE, default=None)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML file with any PretrainConfig fields; flags override it.")  # fmt: skip
@click.option("--seed", type=COUNT, default=None)
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile the step.")
@click.option("--sync-bn", is_flag=True, default=None, help="SyncBatchNorm under torchrun.")
@click.option("--resume", is_flag=True,
              help="Continue from RUN/checkpoint.pt (or start, in an empty RUN).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace a non-empty run directory.")
@click.option("--budget", type=click.Choice(["small", "long"]), default=None,
              help="Epoch preset: small 10, long 100 (--epochs overrides it).")  # fmt: skip
@click.option("--data-fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Keep this seeded share of the corpus' records. [default: 1]")  # fmt: skip
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Run this many steps (the schedules anneal by then).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def pretrain(data, out, config_file, resume, force, max_steps, budget, as_json, **flags) -> None:
    """BELL (or BYOL) self-supervised pretraining. Runs under torchrun for several GPUs."""
    from bell_edge.config import PretrainConfig, load_toml, replace
    from bell_edge.train.pretrain import BUDGET_EPOCHS, CONFIG, pretrain

    if budget and flags["epochs"] is None:
        flags["epochs"] = BUDGET_EPOCHS[budget]
    if resume and config_file is None and (out / CONFIG).is_file():
        config_file = out / CONFIG
    cfg = load_toml(PretrainConfig, config_file) if config_file else PretrainConfig()
    flags["compile"] = flags.pop("compile_")
    cfg = replace(cfg, **flags)
    summary = pretrain(list(data), out, cfg, resume=resume, force=force, max_steps=max_steps)
    if os.environ.get("RANK", "0") != "0":
        return
    if as_json:
        _print_json(summary)
    else:
        click.echo(
            f"{out}: {summary['steps']}/{summary['total_steps']} steps of {cfg.method} in "
            f"{summary['seconds']} s; loss {summary.get('loss', float('nan')):.4f}, "
            f"collapse std {summary.get('collapse_std', float('nan')):.4f}"
        )


@main.command()
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labeled dataset.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--init", default=None,
              help="Pretraining run, encoder.pt, or the name of a shipped encoder "
                   "(bell-edge pretrained list).")  # fmt: skip
@click.option("--scratch", is_flag=True, help="Random initialization (the baseline).")
@click.option("--label-fraction", type=FRACTION, default=None, help="[default: 1.0]")
@click.option("--subset", type=click.Path(path_type=Path), default=None,
              help="Reuse the labeled subset (subset.json) of another run.")  # fmt: skip
@click.option("--mode", type=click.Choice(["linear", "full"]), default=None, help="[default: full]")
@click.option("--epochs", type=POSITIVE_INT, default=None)
@click.option("--batch-size", type=POSITIVE_INT, default=None)
@click.option("--lr", type=POSITIVE, default=None)
@click.option("--seed", type=COUNT, default=None)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML file with any FinetuneConfig fields; flags override it.")  # fmt: skip
@click.option("--resume", is_flag=True,
              help="Continue from RUN/checkpoint.pt (saved every minute and at Ctrl-C), or "
                   "start in an empty RUN.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace a non-empty run directory.")
@click.option("--task", "tasks", default=None, help=TASK_HELP)
@click.option(
    "--lead-dropout",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of training windows fed with only 2-3 leads (full mode). [default: 0]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def finetune(
    data, out, init, scratch, subset, config_file, resume, force, tasks, as_json, **flags
) -> None:
    """Fine-tune a classifier with a fraction of the labels (linear probe or full)."""
    from bell_edge.config import FinetuneConfig, load_toml, replace
    from bell_edge.data.datasets import parse_tasks
    from bell_edge.train.finetune import finetune

    if (init is None) == (not scratch):
        raise InputError("give exactly one of --init RUN_OR_CKPT and --scratch")
    cfg = load_toml(FinetuneConfig, config_file) if config_file else FinetuneConfig()
    cfg = replace(cfg, tasks=parse_tasks(tasks) if tasks else None, **flags)
    summary = finetune(data, out, cfg, init=init, subset=subset, force=force, resume=resume)
    if as_json:
        _print_json(summary)
        return
    val = summary["val"]
    click.echo(
        f"{out}: {summary['mode']} from {summary['init']}, {summary['train_records']} labeled "
        f"records; best epoch {summary['best_epoch']}; val macro AUROC {val['macro_auroc']:.4f}"
    )


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labeled dataset.")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test",
              show_default=True)  # fmt: skip
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default=None,
              help="Bundle model to run (default int8); ignored for a torch run.")  # fmt: skip
@click.option("--bootstrap", type=COUNT, default=1000, show_default=True, help="CI resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--task",
    "tasks",
    default=None,
    help="Score only these of the model's tasks. [default: all of them]",
)
@click.option(
    "--leads",
    default=None,
    help="Mask all other leads and apply this lead set's thresholds, e.g. I,II.",
)
def evaluate(model, data, split, precision, bootstrap, as_json, tasks, leads) -> None:
    """Macro and per-class AUROC/AUPRC of a fine-tuned run, checkpoint or bundle."""
    from bell_edge.train.evaluate import evaluate_run

    if not model.exists():
        raise InputError(f"{model}: no such run, checkpoint or bundle")
    result = evaluate_run(model, data, split, bootstrap, precision, tasks, leads)
    if as_json:
        _print_json(result)
        return
    _show_metrics(result)


def _show_metrics(r: dict) -> None:
    ci = r.get("macro_auroc_ci")
    interval = f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else " (no CI)"
    click.echo(
        f"{r['model']} ({r['precision']}) on {r['split']}: {r['n_records']} records, "
        f"macro AUROC {r['macro_auroc']:.4f}{interval}, "
        f"macro AUPRC {r['macro_auprc']:.4f}; leads {r['leads']}, "
        f"{100 * r['positive_rate']:.1f}% of decisions positive"
    )
    click.echo(f"{'class':>8} {'AUROC':>7} {'AUPRC':>7} {'F1':>6} {'pos':>5}")
    for cls, m in r["per_class"].items():
        if m.get("auroc") is None:
            click.echo(
                f"{cls:>8} {'-':>7} {'-':>7} {'-':>6} {m['positives']:>5}  {m.get('note', '')}"
            )
            continue
        click.echo(
            f"{cls:>8} {m['auroc']:>7.4f} {m['auprc']:>7.4f} {m['f1']:>6.3f} {m['positives']:>5}"
        )


class _StageBar:
    """A bar over a job's named stages, called with each name as its stage starts. It appears at
    the first stage, so a refusal before any work stays one line."""

    def __init__(self, job: str, stages: list[str]):
        self.job, self.stages, self.bar = job, stages, None

    def __call__(self, name: str) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=len(self.stages), file=sys.stderr, leave=False,
                            bar_format=f"{self.job} {{bar:20}} {{n}}/{{total}} stages "
                                       "[{elapsed}] {desc}")  # fmt: skip
        self.bar.set_description_str(name)
        self.bar.update(self.stages.index(name) - self.bar.n)

    def write(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


@main.command()
@click.argument("ckpt", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bundle folder.")
@click.option("--int8", is_flag=True, help="Add INT8 models calibrated on unlabeled ECGs.")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Unlabeled folder (its train split) or calibration manifest.")  # fmt: skip
@click.option("--eval", "eval_data", type=click.Path(path_type=Path), default=None,
              help="Labeled folder for the gate (its val split) [default: --calib when it is a "
                   "folder].")  # fmt: skip
@click.option("--max-drop", type=click.FloatRange(0, 1), default=0.01, show_default=True,
              help="Largest macro AUROC drop INT8 may cost (absolute).")  # fmt: skip
@click.option("--method", type=click.Choice(["minmax", "entropy", "percentile"]),
              default="minmax", show_default=True, help="Calibration method.")  # fmt: skip
@click.option(
    "--engine", type=click.Choice(["onnx", "tensorrt"]), default="onnx", show_default=True
)
@click.option("--litert", is_flag=True,
              help="Add a full-integer INT8 LiteRT (TFLite) model, gated too.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing bundle.")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle and its report as JSON.")
def export(
    ckpt, out, int8, calib, eval_data, max_drop, method, engine, litert, force, as_json
) -> None:
    """Export a fine-tuned model to a verified bundle (FP32, INT8 with an accuracy gate)."""
    from bell_edge.compress.pipeline import export_bundle, export_stages

    with _StageBar("export", export_stages(int8, method, engine, litert)) as step:
        bundle, report = export_bundle(
            ckpt, out, int8, calib, eval_data, max_drop, method, engine, force, step=step,
            litert=litert, note=lambda text: step.write(f"note: {text}"),
        )  # fmt: skip
    if as_json:
        _print_json({"bundle": str(bundle.root), "files": sorted(bundle.files), **report})
        return
    click.echo(f"{bundle.root}: verified bundle with {', '.join(sorted(bundle.files))}")
    gate = report.get("gate")
    if gate:
        click.echo(f"{'class':>8} {'FP32':>8} {'INT8':>8} {'drop':>7}")
        for cls, d in gate["per_class_drop"].items():
            if d["fp32"] is not None:
                click.echo(f"{cls:>8} {d['fp32']:>8.4f} {d['int8']:>8.4f} {100 * d['drop']:>+6.2f}")
        click.echo(
            f"{'macro':>8} {gate['fp32']['macro_auroc']:>8.4f} {gate['int8']['macro_auroc']:>8.4f} "
            f"{100 * gate['macro_drop']:>+6.2f}  gate {100 * max_drop:.2f} points: PASSED; "
            f"{100 * gate['changed_decisions']:.2f}% of decisions changed"
        )
    lite = report.get("litert")
    if lite:
        f32, i8 = lite["fp32"]["macro_auroc"], lite["int8"]["macro_auroc"]
        click.echo(
            f"{'LiteRT':>8} {f32:>8.4f} {i8:>8.4f} "
            f"{100 * lite['macro_drop']:>+6.2f}  PASSED with {len(lite['excluded'])} ops in float; "
            f"{lite['facts']['bytes']} bytes, arena {lite['facts']['arena']['activations']} bytes"
        )


@main.group(cls=_Group)
def calibration() -> None:
    """Versioned calibration sets of unlabeled ECG windows."""


@calibration.command("build")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Manifest name: writes DIR/NAME.json.")
@click.option("--windows", type=POSITIVE_INT, default=512, show_default=True)
@click.option("--seed", type=COUNT, default=0, show_default=True)
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=Path("calibration"),
              show_default=True)  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest (less its windows).")
def calibration_build(paths, name, windows, seed, folder, force, as_json) -> None:
    """Pick N windows from unlabeled records (labels ignored; the train split if there is one)."""
    from bell_edge.compress.calibration import build_manifest, save_manifest

    if Path(name).name != name or name in ("", ".", ".."):
        raise InputError(f"--name {name!r}: give a plain file name, not empty and without "
                         "folders (--dir says where)")  # fmt: skip
    target = folder / f"{name}.json"
    if target.exists() and not force:  # before reading every record
        raise InputError(f"{target}: exists (use --force to replace it)")
    manifest = build_manifest(list(paths), name, windows, seed)
    save_manifest(manifest, target, force=force)
    if as_json:
        _print_json({"manifest": str(target), **{k: v for k, v in manifest.items()
                                                if k != "windows"}})  # fmt: skip
        return
    click.echo(f"{target}: {windows} windows from {', '.join(str(p) for p in paths)}")


@main.group(cls=_Group)
def pretrained() -> None:
    """Pretrained encoders shipped in the package (no download)."""


@pretrained.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def pretrained_list(as_json: bool) -> None:
    """Name, method, parameters and sha256 of every shipped encoder."""
    from bell_edge.models.pretrained import available

    manifests = available()
    if as_json:
        keys = ("name", "method", "params", "sha256", "bytes", "steps", "commit", "labels_used")
        rows = [{**{k: m.get(k) for k in keys}, "results": m.get("results", {})} for m in manifests]
        click.echo(json.dumps(rows, indent=1))
        return
    if not manifests:
        click.echo("no shipped encoders")
    for m in manifests:
        click.echo(
            f"{m['name']}: {m['method']}, {m['params']:,} parameters, {m['steps']} steps, "
            f"sha256 {m['sha256'][:16]}..."
        )


@main.group(cls=_Group)
def experiment() -> None:
    """Reproducible experiments."""


CLAIM_HELP = "Write into a non-empty OUT that bell-edge did not write (its stages are reused)."


def _numbers(text: str, flag: str, kind=float) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{flag} {text}: expected a comma-separated list of numbers") from None


def _named_inits(pairs: tuple[str, ...], option: str = "--init") -> dict[str, str]:
    inits = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{option} {pair}: expected NAME=PATH")
        inits[name] = path
    return inits


@experiment.command("label-efficiency")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labeled dataset.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--fractions", default="0.01,0.1,1.0", show_default=True)
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--budget", type=click.Choice(["small", "long", "full", "cli"]), default="small",
              show_default=True,
              help="small: 10 pretraining epochs; long: 100 (2 CPU cores, about an hour per "
                   "method); full: for a GPU; cli: long pretraining, and fine-tuning as "
                   "`bell-edge finetune` runs it by default.")  # fmt: skip
@click.option("--init", "inits", multiple=True,
              help="NAME=RUN_OR_ENCODER: fine-tune from this encoder instead of pretraining "
                   "(repeat; e.g. bell=runs/bell byol=runs/byol).")  # fmt: skip
@click.option("--pretrain-data", multiple=True, type=click.Path(path_type=Path),
              help="Pretraining corpus folders (repeat). [default: --data]")  # fmt: skip
@click.option("--modes", default="linear,full", show_default=True)
@click.option("--kfold", default=None,
              help="Comma-separated strat_folds: evaluate on each fold in turn, training on the "
                   "others (needs a PTB-XL release layout).")  # fmt: skip
@click.option("--recipe", "recipes", multiple=True,
              help="NAME=TOML: fine-tune init NAME (or scratch) with this FinetuneConfig "
                   "(repeat).")  # fmt: skip
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print results.json.")
@click.option("--task", "tasks", default=None, help=TASK_HELP)
@click.option("--force", is_flag=True, help=CLAIM_HELP)
def label_efficiency(data, out, fractions, seeds, budget, inits, pretrain_data, modes, kfold,
                     recipes, device, as_json, tasks, force) -> None:  # fmt: skip
    """Pretrained inits vs random init at several label fractions: report.md and a plot."""
    from bell_edge.config import FinetuneConfig, load_toml
    from bell_edge.train.experiment import MODES, label_efficiency, summarize

    chosen = tuple(m.strip() for m in modes.split(","))
    if not set(chosen) <= set(MODES):
        raise InputError(f"--modes {modes}: use linear and/or full")
    folds = _numbers(kfold, "--kfold", int) if kfold else None
    named_recipes = {name: load_toml(FinetuneConfig, path)
                     for name, path in _named_inits(recipes, "--recipe").items()}  # fmt: skip
    report = label_efficiency(
        data, out, _numbers(fractions, "--fractions"), seeds, budget, device=device,
        inits=_named_inits(inits), pretrain_data=list(pretrain_data) or None, modes=chosen,
        folds=folds, tasks=tasks, recipes=named_recipes, force=force,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    for (name, mode, fraction), (mean, std, n) in sorted(summarize(report["results"]).items()):
        click.echo(f"{name:>10} {mode:>6} {fraction:>5g}: {mean:.4f} ± {std:.4f} ({n} runs)")
    for g in report["gains"] + report["between_pretrained"]:
        lo, hi = g["ci95_points"]
        click.echo(f"gain {g['init']} over {g['baseline']} {g['mode']} {g['fraction']:g}: "
                   f"{g['gain_points']:+.2f} points [{lo:+.2f}, {hi:+.2f}]")  # fmt: skip
    click.echo(f"report: {out / 'report.md'}, plot: {out / 'label_efficiency.png'}")


@experiment.command("data-curve")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labeled dataset.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--pretrain-data", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Pretraining corpus folders (repeat).")  # fmt: skip
@click.option("--corpus-fractions", default="0.25,0.5,1.0", show_default=True)
@click.option("--label-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.1,
              show_default=True)  # fmt: skip
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--budget", type=click.Choice(["small", "long", "full", "cli"]), default="long",
              show_default=True)  # fmt: skip
@click.option(
    "--ready",
    multiple=True,
    help="SHARE=RUN: an encoder already pretrained on that share (e.g. 1.0=runs/bell).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print data_curve.json.")
@click.option("--force", is_flag=True, help=CLAIM_HELP)
def data_curve(data, out, pretrain_data, corpus_fractions, label_fraction, seeds, budget, ready,
               device, as_json, force) -> None:  # fmt: skip
    """The gain over random init against the share of the pretraining corpus, with a plot."""
    from bell_edge.train.experiment import data_curve

    try:
        done = {float(k): v for k, v in _named_inits(ready, "--ready").items()}
    except ValueError:
        raise InputError("--ready: expected SHARE=RUN with SHARE a number (e.g. 1.0=RUN)") from None
    report = data_curve(data, out, list(pretrain_data), _numbers(corpus_fractions,
                        "--corpus-fractions"), label_fraction, seeds, budget, device=device,
                        ready=done, force=force)  # fmt: skip
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    for g in sorted(report["gains"], key=lambda g: g["corpus_windows"]):
        lo, hi = g["ci95_points"]
        click.echo(f"{g['corpus_windows']:>6} windows: gain {g['gain_points']:+.2f} points "
                   f"[{lo:+.2f}, {hi:+.2f}]")  # fmt: skip
    click.echo(f"plot: {out / 'data_curve.png'}")


@main.command()
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="[default: $BELL_EDGE_DATA, else ../shared/data/ptbxl100-release]")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_out"), show_default=True)
@click.option("--budget", type=click.Choice(["small", "full"]), default="small", show_default=True)
@click.option(
    "--task",
    "tasks",
    default=None,
    help="Label tasks. [default: superdiagnostic,rhythm where the data gives both]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--force", is_flag=True, help=CLAIM_HELP)
def demo(data, out, budget, tasks, as_json, force) -> None:
    """The main job end to end on real ECGs (resumes where it stopped)."""
    from bell_edge.demo import gain_text, per_hop, run_demo

    def report(stage: str, seconds: float, note: str) -> None:
        click.echo(f"[{seconds:7.1f} s] {stage:<28} {note}", err=as_json)

    summary = run_demo(data, out, budget, report, tasks, force)
    if as_json:
        _print_json(summary)
        return
    click.echo("")
    seeds = summary["bell_vs_scratch"][0]["seeds"]
    click.echo(f"macro AUROC on val, 10% labels, mean of seeds {', '.join(map(str, seeds))}:")
    click.echo(f"{'':<44} {'scratch':>7} {'bell':>7}  bell - scratch, paired 95% CI")
    for row in summary["bell_vs_scratch"]:
        group = f"{row['group']} ({len(row['classes'])})"
        click.echo(f"{group:<44} {row['scratch']:>7.4f} {row['bell']:>7.4f}  {gain_text(row)}")
    scored = summary["bundle_classes_scored"]  # those with a val positive, as in the rows above
    for precision in ("fp32", "int8"):
        label = f"bell seed-0 bundle, ONNX {precision.upper()} ({scored})"
        click.echo(f"{label:<44} {summary[precision + '_val_macro_auroc']:>8.4f}")
    for name, ms in summary["latency_ms_batch1"].items():
        click.echo(f"{'latency ' + name + ', batch 1, p50':<44} {ms:>8.2f} ms")
    speed = ", ".join(f"{x:.1f}x {name}" for name, x in summary["int8_speedup_vs"].items())
    click.echo(f"{'INT8 speed-up':<44} {speed}")
    sizes = ", ".join(f"{k} {v} MB" for k, v in summary["bundle_mb"].items() if "onnx" in k)
    click.echo(f"bundle {summary['bundle']}: {sizes}")
    mon = summary["monitor"]
    click.echo(
        f"monitor replay {mon['record']}: {mon['analysed']}/{mon['hops']} hops analysed, "
        f"{per_hop(mon['latency_ms'])}"
    )
    click.echo(f"outputs in {out}/ (report: {out / 'report.md'})")


@main.command()
@click.argument("ckpt", type=click.Path(path_type=Path))
@click.option("--ratio", required=True, type=click.FloatRange(0, 1, max_open=True),
              help="Share of every encoder layer's channels to remove, in [0, 1).")  # fmt: skip
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="The labeled dataset CKPT was fine-tuned on.")  # fmt: skip
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--epochs", type=POSITIVE_INT, default=8, show_default=True,
              help="Recovery fine-tuning epochs on CKPT's labeled subset.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace a non-empty run directory.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def prune(ckpt, ratio, data, out, epochs, force, as_json) -> None:
    """Prune a fine-tuned model's encoder channels, then fine-tune it briefly to recover."""
    from bell_edge.compress.prune import prune_run
    from bell_edge.train.finetune import finetune

    r = prune_run(ckpt, ratio, data, out, finetune, epochs, force, progress=not as_json,
                  step=lambda name: click.echo(f"... {name}", err=True))  # fmt: skip
    if as_json:
        _print_json(r)
        return
    b, a = r["before"], r["after"]
    click.echo(
        f"{out}: ratio {ratio:g}; params {b['params']:,} -> {a['params']:,}; MACs "
        f"{b['macs'] / 1e6:.1f}M -> {a['macs'] / 1e6:.1f}M; val macro AUROC "
        f"{b['val_macro_auroc']:.4f} -> {a['val_macro_auroc']:.4f} pruned -> "
        f"{a['recovered_val_macro_auroc']:.4f} after {epochs} recovery epochs"
    )


@main.command()
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--bundle", required=True, type=click.Path(path_type=Path), help="Bundle folder.")
@click.option("--speed", default="1", show_default=True,
              help="N times real time, or max (no waiting).")  # fmt: skip
@click.option("--hop", type=POSITIVE, default=1.0, show_default=True,
              help="Seconds between events.")  # fmt: skip
@click.option("--precision", type=click.Choice(["int8", "fp32"]), default="int8",
              show_default=True)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Events as JSON lines, then the summary.")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="PNG of the ECG with predictions and quality flags over time.")  # fmt: skip
@click.option("--annotations", type=click.Path(path_type=Path), default=None,
              help="Folder for <record>.qrs, made if missing: WFDB beats, rhythm.")  # fmt: skip
@click.option("--alarms", "alarm_file", type=click.Path(path_type=Path), default=None,
              help="TOML file of alarm settings (brady_bpm, tachy_bpm, asystole_s, af_*, "
                   "clear_s, ...); unset ones keep their defaults.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing --plot or .qrs file.")
def monitor(record, bundle, speed, hop, precision, as_json, plot, annotations, alarm_file,
            force) -> None:  # fmt: skip
    """Replay a WFDB record through the streaming bedside monitor, one line per hop."""
    from bell_edge.config import load_toml
    from bell_edge.replay import event_line, parse_speed, replay, summary_lines
    from bell_edge.runtime.alarms import AlarmConfig

    def show(event) -> None:
        if as_json:
            click.echo(json.dumps(event.to_dict()))
        else:
            click.echo(event_line(event))

    alarms = None if alarm_file is None else load_toml(AlarmConfig, alarm_file)

    def note(text: str) -> None:
        click.echo(f"warning: {text}", err=True)

    summary = replay(record, bundle, parse_speed(speed), hop, precision, plot, force, show,
                     annotations, alarms, note)  # fmt: skip
    if as_json:
        click.echo(json.dumps({"summary": summary}))
    else:
        for line in summary_lines(summary):
            click.echo(line)


def _ints(option: str, value: str) -> tuple[int, ...]:
    """Positive integers, comma-separated; anything else is one line naming the option."""
    try:
        ints = tuple(int(v) for v in value.split(","))
    except ValueError:
        ints = ()
    if not ints or min(ints) < 1:
        raise InputError(f"{option} {value}: expected positive integers like 1,8,32")
    return ints


@main.command("bench")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--batch", "batches", default="1,8,32", show_default=True, help="Batch sizes.")
@click.option("--threads", default="1,2", show_default=True, help="Thread counts.")
@click.option("--warmup", type=COUNT, default=10, show_default=True, help="Untimed runs first.")
@click.option("--runs", type=POSITIVE_INT, default=100, show_default=True,
              help="Timed runs per case.")  # fmt: skip
@click.option("--backends", default=None,
              help="Comma-separated subset of torch-fp32, ort-fp32, ort-int8, ort-int8-trt, "
                   "litert-int8, torch-cuda-bf16, ort-cuda-fp32, tensorrt-int8 "
                   "[default: all].")  # fmt: skip
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Real ECGs for inputs [default: $BELL_EDGE_DATA, else ../shared/data/ptbxl100, "
                   "else the bundle's calibration sources].")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the JSON.")
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def bench_cmd(bundle, batches, threads, warmup, runs, backends, data, out, force, as_json) -> None:
    """Latency of a bundle on every backend here: percentiles, throughput, memory, ratios."""
    from bell_edge.bench.latency import bench, table
    from bell_edge.bench.machine import summary

    report = bench(
        [bundle], _ints("--batch", batches), _ints("--threads", threads), warmup, runs,
        backends.split(",") if backends else None, data, out, force, progress=not as_json,
    )  # fmt: skip
    if as_json:
        _print_json(report)
        return
    click.echo(summary(report["machine"]))
    for line in table(report):
        click.echo(line)


@main.command("profile")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(["ort-int8", "ort-fp32", "torch"]),
              default="ort-int8", show_default=True)  # fmt: skip
@click.option("--top", type=POSITIVE_INT, default=15, show_default=True, help="Layers to list.")
@click.option("--batch", type=POSITIVE_INT, default=1, show_default=True)
@click.option("--threads", type=POSITIVE_INT, default=1, show_default=True)
@click.option("--warmup", type=COUNT, default=10, show_default=True)
@click.option("--runs", type=POSITIVE_INT, default=50, show_default=True)
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Real ECGs for inputs [default: $BELL_EDGE_DATA, else ../shared/data/ptbxl100, "
                   "else the bundle's calibration sources].")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder [default: profile_out/BUNDLE-BACKEND].")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def profile_cmd(bundle, backend, top, batch, threads, warmup, runs, data, out, force,
                as_json) -> None:  # fmt: skip
    """Per-layer time of a bundle's model: Chrome trace, table and bar chart."""
    from bell_edge.bench.profile import profile, table

    result = profile(bundle, out, backend, batch, threads, warmup, runs, top, data, force,
                     progress=not as_json)  # fmt: skip
    if as_json:
        _print_json({k: v for k, v in result.items() if k != "layers"})
        return
    for line in table(result):
        click.echo(line)


if __name__ == "__main__":
    main()
