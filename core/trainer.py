"""The training loop shared by every objective.

config -> task (data) -> model -> objective -> AdamW -> loop with accumulation, clipping, EMA,
logging, evaluation, samples and atomic checkpoints. Resuming restores weights, EMA, optimizer,
schedule (a function of the step), RNG states and the data position, so an interrupted run
continues bit for bit (on CPU).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from core import checkpoint as ckpt_lib
from core.batch_rng import BatchRNG
from core.context import RunContext
from core.device import pick_dtype, sync
from core.distributed import all_reduce_max, all_reduce_mean, barrier, gather_rng, init_distributed
from core.ema import EMA
from core.stop_signal import StopSignal
from core.state import load_model_state, load_optim_state, model_state, optim_state
from core.metrics_log import MetricsLog
from core.model import Model
from core.optim import budget_progress, build_optimizer, check_schedule, lr_at
from modalities.task import get_task
from objectives import get_objective

PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def _to(batch: dict, device) -> dict:
    """Host batches go through pinned memory so the copy does not stall the CPU behind the GPU."""
    def move(v):
        if not torch.is_tensor(v):
            return v
        if device.type == "cuda" and v.device.type == "cpu":
            v = v.pin_memory()
        return v.to(device, non_blocking=True)

    return {k: move(v) for k, v in batch.items()}


class Trainer:
    def __init__(self, cfg, run_dir: Path, resume_from: Path | None = None, quiet: bool = False):
        self.cfg, self.run_dir, self.quiet = cfg, Path(run_dir), quiet
        tcfg = cfg.train
        check_schedule(tcfg)
        self.dist, self.device = init_distributed(tcfg.device)
        self.dtype = pick_dtype(tcfg.dtype, self.device)
        self.ctx = RunContext(cfg, self.device, self.dtype, self.dist.rank, self.dist.world)
        torch.manual_seed(tcfg.seed)  # identical initial weights on every rank (FSDP shards them as they are)
        if self.device.type == "cuda":
            if tcfg.host_threads > 0:
                torch.set_num_threads(tcfg.host_threads)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        objective_cls = get_objective(cfg.objective.name)
        self.task = get_task(objective_cls.task)(cfg, self.run_dir, resume_from is not None, self.dist.rank, self.dist.world)
        self.spec = self.task.spec()
        self.task.to(self.device)
        self.objective = objective_cls(cfg.objective, self.spec)
        if hasattr(self.objective, "validate_batch"):
            self.objective.validate_batch(tcfg.batch_size)  # per process: groups never straddle ranks
        if self.dist.is_main:
            (self.run_dir / "spec.json").write_text(self.spec.to_json())

        self.fsdp = self.dist.enabled and tcfg.distributed == "fsdp"
        self.model = Model(cfg.model, self.spec).to(self.device)
        self.train_model = self._wrap(self.model)  # compile, then DDP/FSDP2
        self.optimizer = build_optimizer(self.model, tcfg, self.device)  # after sharding: params are DTensors
        self.ema = EMA(self.model, tcfg.ema) if tcfg.ema > 0 else None
        self.eval_model: Model | None = None
        torch.manual_seed(tcfg.seed + self.dist.rank)  # then each rank its own dropout masks
        self.step = 0
        self.train_seconds = 0.0
        self.best_val: float | None = None
        if resume_from is not None:
            self._restore(resume_from)
        # the training time that every rank agrees on: what the time limit and decay_by=time read
        self.budget_seconds = self.train_seconds
        self.log = MetricsLog(self.run_dir, enabled=self.dist.is_main)
        if resume_from is not None and self.dist.is_main:
            self.log.truncate_after(self.step)

    def _restore(self, ckpt: Path) -> None:
        data = ckpt_lib.read_checkpoint(ckpt)
        try:
            load_model_state(self.model, data["model"], self.fsdp)
            if data["optim"] is not None:
                load_optim_state(self.model, self.optimizer, data["optim"], self.fsdp)
            if self.ema is not None:
                if data["ema"] is None:
                    raise ckpt_lib.CheckpointError(f"{ckpt} has no EMA weights but train.ema > 0")
                self.ema.load_state(data["ema"])
        except (KeyError, RuntimeError, ValueError) as e:
            if isinstance(e, ckpt_lib.CheckpointError):
                raise
            raise ckpt_lib.CheckpointError(f"{ckpt} does not fit this run: {e}") from None
        ckpt_lib.set_rng_state(data["rng"], self.dist.rank)
        state = data["meta"]["trainer"]
        self.step, self.train_seconds, self.best_val = state["step"], state["train_seconds"], state.get("best_val")
        self.task.load_data_state(state.get("data", {}))

    def _wrap(self, model):
        """Compile (per block, or the whole loss function) and then wrap for data parallelism."""
        from core.parallel import wrap_model
        from core.training_compile import compile_for_training

        self.loss_fn = compile_for_training(model, self.objective, self.cfg.train)
        return wrap_model(model, self.cfg.train.distributed, self.dist, self.device)

    # --- bookkeeping --------------------------------------------------------------------------
    @property
    def samples_per_step(self) -> int:
        t = self.cfg.train
        return t.batch_size * t.grad_accum * self.dist.world

    def flops_per_step(self) -> float:
        """6 N per token for forward+backward plus attention (nanoGPT's estimate), times the
        objective's multiplier for extra forward passes."""
        shape = self.model.backbone
        n = self.model.num_params(exclude_embeddings=True)
        t = self.task.tokens_per_sample
        per_token = 6 * n + 12 * shape.n_layer * shape.d_model * t
        return per_token * t * self.samples_per_step * self.objective.flops_multiplier

    def trainer_state(self) -> dict:
        return {"step": self.step, "train_seconds": self.train_seconds, "best_val": self.best_val,
                "data": self.task.data_state()}

    def save(self) -> Path | None:
        """Every rank joins (gathering FSDP shards and RNG states); rank 0 writes."""
        model_sd = model_state(self.model, self.fsdp)
        optim_sd = optim_state(self.model, self.optimizer, self.fsdp)
        ema_sd = self.ema.state() if self.ema is not None else None
        rng = gather_rng(self.dist.rank)
        path = None
        if self.dist.is_main:
            path = ckpt_lib.save_checkpoint(self.run_dir / "ckpt", self.step, model_sd, optim_sd, ema_sd,
                                            self.trainer_state(), rng, keep=self.cfg.train.keep_ckpts)
        barrier()
        return path

    # --- evaluation ---------------------------------------------------------------------------
    def _model_for_eval(self):
        """The EMA weights (or under FSDP the gathered weights) in a plain model on rank 0; else the
        training model itself. Gathering is a collective, so every rank calls this."""
        if self.ema is None and not self.fsdp:
            return self.model
        sd = self.ema.state() if self.ema is not None else model_state(self.model, self.fsdp)
        if not self.dist.is_main:
            return None
        if self.eval_model is None:
            self.eval_model = Model(self.cfg.model, self.spec).to(self.device)
        load_model_state(self.eval_model, sd, fsdp=False)
        return self.eval_model

    def evaluate_and_sample(self, sample: bool) -> dict:
        """Evaluation never touches the training RNG streams (building the evaluation model included),
        so runs that evaluate at different steps stay identical."""
        metrics: dict = {}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            model = self._model_for_eval()
            if self.dist.is_main:
                was_training = model.training
                model.eval()
                metrics = self.task.evaluate(model, self.objective, self.ctx)
                if sample:
                    self.task.write_samples(model, self.objective, self.step, self.run_dir / "samples", self.ctx)
                model.train(was_training)
        barrier()
        return metrics

    # --- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg, tcfg = self.cfg, self.cfg.train
        peak = peak_flops(self.device)
        flops = self.flops_per_step()
        self.train_model.train()
        bar = tqdm(total=tcfg.steps, initial=self.step, disable=self.quiet or not self.dist.is_main,
                   dynamic_ncols=True, desc=cfg.objective.name)
        last_metrics: dict = {}
        window_loss = torch.zeros((), device=self.device)
        window_steps, window_t0 = 0, time.perf_counter()
        stop_reason = "time_limit" if self._out_of_time() else "steps"  # a resumed run whose budget is spent
        wall_t0 = time.perf_counter()
        first_step = self.step
        profiler, profile_from = None, self.step + tcfg.log_every  # after compilation and warm-up
        stop = StopSignal().install()  # restored in the finally below
        try:
            while self.step < tcfg.steps and stop_reason == "steps":
                t0 = time.perf_counter()
                if tcfg.profile_steps and self.dist.is_main and self.step == profile_from:
                    from core.profiling import StepProfiler

                    profiler = StepProfiler(self.run_dir / "profile.md")
                    profiler.start()
                out = self.train_step()
                if profiler is not None:
                    profiler.step()
                    if profiler.steps == tcfg.profile_steps:
                        path, profiler = profiler.stop(), None
                        if not self.quiet:
                            tqdm.write(f"profile of {tcfg.profile_steps} steps: {path}")
                window_loss += out["loss"].detach()
                window_steps += 1
                self.step += 1
                bar.update(1)
                if self.step % tcfg.log_every == 0 or self.step == tcfg.steps:
                    sync(self.device)
                    elapsed = time.perf_counter() - window_t0
                    loss = float(all_reduce_mean(window_loss / window_steps))
                    if not math.isfinite(loss):
                        raise FloatingPointError(f"loss became {loss} at step {self.step}; lower train.lr or check the data")
                    sps = window_steps / elapsed
                    m = {"train/loss": loss, "train/lr": self.optimizer.param_groups[0]["lr"], "train/grad_norm": float(out["grad_norm"]),
                         "perf/tokens_per_s": sps * self.samples_per_step * self.task.tokens_per_sample,
                         "perf/samples_per_s": sps * self.samples_per_step, "perf/step_ms": 1000 / sps}
                    m.update({f"train/{k}": float(v) for k, v in out.items() if k not in ("loss", "grad_norm")})
                    if peak:
                        m["perf/mfu"] = flops * sps / (peak * self.dist.world)
                    self.log.log(self.step, m)
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{m['perf/tokens_per_s']:.3g}")
                    window_loss.zero_()
                    window_steps, window_t0 = 0, time.perf_counter()
                if self.step - first_step > tcfg.untimed_steps:  # compilation and graph capture are not training
                    self.train_seconds += time.perf_counter() - t0
                if tcfg.time_limit > 0 and (not self.dist.enabled or self.step % tcfg.log_every == 0):
                    self.budget_seconds = self._agreed_seconds()  # read only with a time limit
                timed_out = self._out_of_time()
                last = self.step == tcfg.steps or timed_out
                signalled = self._agreed_stop(stop, tcfg.log_every) and not last
                t_side = time.perf_counter()
                if tcfg.eval_every and not signalled and (self.step % tcfg.eval_every == 0 or last):
                    sample_now = (tcfg.sample_every == 0) or self.step % tcfg.sample_every == 0 or last
                    last_metrics = self.evaluate_and_sample(sample_now)
                    self._record_eval(last_metrics, bar, time.perf_counter() - wall_t0)
                if (tcfg.ckpt_every and self.step % tcfg.ckpt_every == 0) or last or signalled:
                    path = self.save()
                window_t0 += time.perf_counter() - t_side  # throughput excludes evaluation and saving
                if timed_out:
                    stop_reason = "time_limit"
                    break
                if signalled:
                    stop_reason = stop.name
                    if self.dist.is_main:
                        bar.write(f"{stop.name} at step {self.step}: saved {path}; continue with --resume")
                    break
        except KeyboardInterrupt:
            bar.close()
            path = self.save()
            if self.dist.is_main:
                print(f"\ninterrupted: saved {path}; continue with --resume")
            raise
        finally:
            stop.restore()
            if profiler is not None:  # the run ended first: keep what was profiled
                profiler.stop()
            bar.close()
            self.log.close()
        summary = {"step": self.step, "train_seconds": self.train_seconds, "stop": stop_reason,
                   "best_val": self.best_val, **last_metrics}
        if self.dist.is_main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        return summary

    def _record_eval(self, metrics: dict, bar, wall_seconds: float) -> None:
        if not metrics:
            return
        key = next((k for k in metrics if k.endswith("/loss")), None)
        if key is not None and (self.best_val is None or metrics[key] < self.best_val):
            self.best_val = metrics[key]
        metrics = {**metrics, "train_seconds": self.train_seconds, "wall_seconds": wall_seconds}
        self.log.log(self.step, metrics)
        if self.dist.is_main and not self.quiet:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
            bar.write(f"step {self.step}: {shown}")

    def _out_of_time(self) -> bool:
        limit = self.cfg.train.time_limit
        return limit > 0 and self.budget_seconds >= limit

    def _agreed_stop(self, stop: StopSignal, log_every: int) -> bool:
        """Whether to stop for a signal after this step. Under torchrun every rank must stop at the same
        step (saving is a collective), so ranks agree at log steps: any rank signalled stops them all, and
        each records the signal that did."""
        if not self.dist.enabled:
            return stop.received is not None
        if self.step % log_every:
            return False
        signum = int(all_reduce_max(torch.tensor(stop.received or 0, device=self.device)))
        if signum and stop.received is None:
            stop.received = signum
        return bool(signum)

    def _agreed_seconds(self) -> float:
        """Training seconds, averaged over ranks under torchrun: each rank's clock differs a little, and
        ranks that stopped at different steps, or set different learning rates, would hang or diverge.
        A distributed run agrees at its log steps only (a collective), so it reads the time limit there."""
        if not self.dist.enabled:
            return self.train_seconds
        return float(all_reduce_mean(torch.tensor(self.train_seconds, dtype=torch.float64, device=self.device)))

    def train_step(self) -> dict:
        tcfg = self.cfg.train
        lr = lr_at(self.step, tcfg, self.budget_seconds)
        progress = budget_progress(self.step, tcfg, self.budget_seconds)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = None
        extras: dict = {}
        for micro in range(tcfg.grad_accum):
            if tcfg.cuda_graphs:  # a new iteration: the graphs' previous outputs may be overwritten
                torch.compiler.cudagraph_mark_step_begin()
            batch = _to(self.task.train_batch(self.step, micro, tcfg.batch_size), self.device)
            batch["rng"] = BatchRNG(tcfg.seed, self.step, micro, self.dist.rank, self.dist.world, self.device)
            batch["progress"] = progress  # for objectives with a curriculum
            sync_now = micro == tcfg.grad_accum - 1
            with self._no_sync(not sync_now), self.ctx.autocast():
                out = self.loss_fn(self.train_model, batch)
            (out["loss"] / tcfg.grad_accum).backward()
            loss = out["loss"].detach() / tcfg.grad_accum
            total = loss if total is None else total + loss
            for k, v in out.items():
                if k != "loss":
                    extras[k] = v.detach() if torch.is_tensor(v) else v
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tcfg.grad_clip if tcfg.grad_clip > 0 else float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        return {"loss": total, "grad_norm": grad_norm, **extras}

    def _no_sync(self, skip: bool):
        import contextlib

        no_sync = getattr(self.train_model, "no_sync", None)
        return no_sync() if (skip and no_sync is not None) else contextlib.nullcontext()
