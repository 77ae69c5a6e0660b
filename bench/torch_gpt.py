#!/usr/bin/python3
"""The weft-train GPT model trained with PyTorch eager: the rival of bench/bench-train.

    /usr/bin/python3 bench/torch_gpt.py --threads 2 --steps 30
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_gpt.py --threads 2 --json

Same model, initialisation scheme, optimizer, learning-rate schedule, clipping, batch and
sequence length as weft-train (GPT-2 style, llm.c layout, byte vocabulary 256 with the LM head
tied to the token embedding; the contract both sides follow is written out in the comments
below). f32, CPU, eager mode: what a PyTorch user gets without compiling anything.
--device cuda --dtype bf16 runs the same on a GPU with bf16 autocast, for the GPU comparison
(written for that, not yet run on a GPU).

Data: random bytes from a seeded generator, the same batches for every run with the same
--seed. They cost nothing to make and the timed step does not depend on what the bytes are,
so tokens/s is comparable with weft-train's generated text; the loss is not (random bytes
stay near ln 256 = 5.55).

Which BLAS does the matmul? Debian's python3-torch 1.13 is built with BLAS_INFO=generic: its
f32 matmuls (addmm, bmm, the linear layers) call the reference BLAS interface sgemm_ from
libblas.so.3, and on Debian that name is an alternative pointing at
/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 when libopenblas0-pthread is
installed (`update-alternatives --display libblas.so.3-x86_64-linux-gnu`). oneDNN (libdnnl) is
linked too but serves only convolutions and bf16 matmuls, not f32 linear layers. Checked by
timing a 1024^3 torch.mm with OPENBLAS_CORETYPE=Haswell against SkylakeX on an AVX-512 CPU:
about 100 against 200 GFLOP/s on one thread. So torch's matmuls are OpenBLAS's, the same
library weft links, and OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS apply to torch as they do
to weft. OpenBLAS's threads (OPENBLAS_NUM_THREADS, read when the library loads) are a pool of
their own beside torch's OpenMP threads (torch.set_num_threads / --threads), which is why
bench/bench-train tries the combinations.

Standard library and torch only; run with Debian's /usr/bin/python3.
"""

import argparse
import contextlib
import inspect
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 256  # byte-level tokens, no padding
SKIP_STEPS = 3  # steps left out of the summary: the first ones pay for page faults, thread start


def model_flops_per_token(layers, d_model, seq):
    """6 N + 6 L T C, the "model FLOPs" per token both benchmarks report.

    N counts the parameters that take part in matmuls: every Linear weight (qkv 3C^2,
    attention projection C^2, fc 4C^2, fc projection 4C^2, so 12 C^2 per layer) and the tied LM
    head V C; biases, LayerNorm and the position embedding are left out. 6 L T C is the causal
    attention (Q K^T and A V, forward and backward, lower triangle only).
    """
    n = 12 * layers * d_model * d_model + VOCAB * d_model
    return 6 * n + 6 * layers * seq * d_model


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, d_model, heads, seq, attention):
        super().__init__()
        self.heads = heads
        self.attention = attention
        # True above the diagonal: the future positions a query may not see. Made once.
        self.register_buffer("future", torch.ones(seq, seq, dtype=torch.bool).triu(1),
                             persistent=False)
        self.ln1 = nn.LayerNorm(d_model, eps=1e-5)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model, eps=1e-5)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.fc_proj = nn.Linear(4 * d_model, d_model)

    def causal_attention(self, x):
        b, t, c = x.shape
        hs = c // self.heads
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.heads, hs).transpose(1, 2)  # [B, NH, T, hs]
        k = k.view(b, t, self.heads, hs).transpose(1, 2)
        v = v.view(b, t, self.heads, hs).transpose(1, 2)
        if self.attention == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(hs)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
            att = att.masked_fill(self.future[:t, :t], float("-inf")).softmax(dim=-1)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.attn_proj(y)

    def forward(self, x):
        x = x + self.causal_attention(self.ln1(x))
        x = x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))
        return x


class GPT(nn.Module):
    def __init__(self, layers, d_model, heads, seq, attention):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, d_model)
        self.wpe = nn.Embedding(seq, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, seq, attention) for _ in range(layers))
        self.lnf = nn.LayerNorm(d_model, eps=1e-5)
        self.init_weights(layers)

    def init_weights(self, layers):
        """N(0, 0.02) for wte, wpe and Linear weights; the two projections that feed the
        residual stream N(0, 0.02 / sqrt(2 L)); biases 0; LayerNorm weight 1, bias 0."""
        residual_std = 0.02 / math.sqrt(2 * layers)
        for name, p in self.named_parameters():
            if name.endswith("attn_proj.weight") or name.endswith("fc_proj.weight"):
                nn.init.normal_(p, 0.0, residual_std)
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif (".ln" in name or name.startswith("lnf.")) and name.endswith("weight"):
                nn.init.ones_(p)
            else:
                nn.init.zeros_(p)

    def forward(self, tokens, targets):
        t = tokens.shape[1]
        pos = torch.arange(t, device=tokens.device)
        x = self.wte(tokens) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.lnf(x), self.wte.weight)  # tied LM head, no bias
        return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))


def learning_rate(step, peak, warmup, steps, floor_ratio=0.1):
    """Linear warmup (step s in 1..warmup gets peak*s/warmup), then cosine decay to
    floor_ratio*peak at `steps`: weft-train's LrSchedule."""
    if step <= warmup:
        return peak * step / max(1, warmup)
    if steps <= warmup:
        return peak
    floor = peak * floor_ratio
    progress = min(1.0, max(0.0, (step - warmup) / (steps - warmup)))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def adamw_implementation(choice, device):
    """The AdamW implementation to ask for. 'fused' where this torch has a fused AdamW for the
    device (CUDA: 2.0 and later; CPU: 2.4 and later). Else on CPU 'loop', the single-tensor
    path that is torch's own default for CPU tensors: 'foreach' (multi-tensor) is slower there
    with torch 1.13 (on this model, 3.3M parameters, 1 thread, its step took 79 ms against
    34 ms for the loop); on CUDA 'foreach'."""
    if choice != "auto":
        return choice
    version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    has_fused = "fused" in inspect.signature(torch.optim.AdamW).parameters
    if has_fused and version >= ((2, 0) if device == "cuda" else (2, 4)):
        return "fused"
    return "foreach" if device == "cuda" else "loop"


def make_optimizer(model, lr, weight_decay, implementation):
    """AdamW, betas (0.9, 0.95), eps 1e-8; weight decay on the 2-D weights only (wte, wpe and
    the Linear weights), not on biases or LayerNorm parameters."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kwargs = {"lr": lr, "betas": (0.9, 0.95), "eps": 1e-8}
    if implementation == "fused":
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = implementation == "foreach"
    return torch.optim.AdamW(groups, **kwargs)


def attention_choice(choice):
    """'sdpa' (F.scaled_dot_product_attention, PyTorch's best CPU path: one fused kernel, no
    [T, T] score tensor kept for backward) where this torch has it (2.0 and later); Debian
    bookworm's torch 1.13 does not, so there 'manual' (matmul, mask, softmax, matmul) runs."""
    if choice == "auto":
        return "sdpa" if hasattr(F, "scaled_dot_product_attention") else "manual"
    if choice == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):
        sys.exit(f"torch_gpt.py: --attention sdpa needs torch 2.0 or later; this is "
                 f"{torch.__version__}. Use --attention manual")
    return choice


def summarize(records, skip=SKIP_STEPS):
    """Work over time for the steps after the first `skip` (all steps when there are no more):
    the same averaging as weft-train's summary, so the two are comparable."""
    timed = records[skip:] if len(records) > skip else records
    seconds = sum(r["ms_step"] for r in timed) / 1e3
    tokens = sum(r["tokens_per_s"] * r["ms_step"] / 1e3 for r in timed)
    gflop = sum(r["model_gflops"] * r["ms_step"] / 1e3 for r in timed)
    return {
        "steps": len(records),
        "loss": records[-1]["loss"] if records else float("nan"),
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
        "model_gflops": gflop / seconds if seconds > 0 else 0.0,
        "ms_step": 1e3 * seconds / len(timed) if timed else 0.0,
    }


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Train weft-train's GPT with PyTorch eager on CPU (f32) and report tokens/s.")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=8, help="sequences per step")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0, help="global gradient norm; 0 disables")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads (0: torch's default). OpenBLAS's own threads are "
                        "set by OPENBLAS_NUM_THREADS in the environment")
    p.add_argument("--attention", choices=["auto", "sdpa", "manual"], default="auto",
                   help="auto: scaled_dot_product_attention where torch has it, else manual")
    p.add_argument("--adamw", choices=["auto", "fused", "foreach", "loop"], default="auto",
                   help="AdamW implementation (auto: fused if this torch has it on CPU, "
                        "else loop, the faster of the other two on CPU)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cuda: the same model on the GPU (for the GPU comparison; CPU is what "
                        "bench/bench-train runs)")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                   help="bf16: forward and backward under torch.autocast(bfloat16), weights, "
                        "gradients and AdamW in f32")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per step (weft-train's --log-json fields), then "
                        '{"summary": {...}}, then the summary line')
    a = p.parse_args(argv)
    for name in ("layers", "d_model", "heads", "seq", "batch", "steps"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(a, name)}")
    if a.d_model % a.heads:
        p.error(f"--heads {a.heads} does not divide --d-model {a.d_model}")
    if a.threads < 0 or a.warmup < 0 or a.clip < 0:
        p.error("--threads, --warmup and --clip must not be negative")
    return a


def main(argv):
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_gpt.py: --device cuda but this torch sees no CUDA device")
    device = torch.device(a.device)
    # Wait for the device's queued work before reading the clock (nothing to wait for on CPU).
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    autocast = (lambda: torch.autocast(a.device, dtype=torch.bfloat16)) if a.dtype == "bf16" \
        else contextlib.nullcontext
    torch.manual_seed(a.seed)
    attention = attention_choice(a.attention)
    adamw = adamw_implementation(a.adamw, a.device)
    model = GPT(a.layers, a.d_model, a.heads, a.seq, attention).to(device)
    optimizer = make_optimizer(model, a.lr, a.weight_decay, adamw)
    params = [p for p in model.parameters()]

    # Every batch made up front, so the timed steps do only training work.
    data = torch.Generator().manual_seed(a.seed + 1)
    batches = []
    for _ in range(a.steps):
        b = torch.randint(0, VOCAB, (a.batch, a.seq + 1), generator=data)
        batches.append((b[:, :-1].contiguous().to(device), b[:, 1:].contiguous().to(device)))

    flops_per_token = model_flops_per_token(a.layers, a.d_model, a.seq)
    tokens_per_step = a.batch * a.seq
    openblas_threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    coretype = os.environ.get("OPENBLAS_CORETYPE", "auto")
    header = (f"torch {torch.__version__} eager {a.dtype} {a.device} | {a.layers} layers, "
              f"d-model {a.d_model}, {a.heads} heads, seq {a.seq}, batch {a.batch} | torch threads "
              f"{torch.get_num_threads()}, OPENBLAS_NUM_THREADS={openblas_threads}, "
              f"OPENBLAS_CORETYPE={coretype} | attention {attention}, AdamW {adamw} | "
              f"data: random bytes, seed {a.seed}")
    print(header if not a.json else json.dumps({"config": header}), flush=True)

    records = []
    start = time.perf_counter()
    for step in range(1, a.steps + 1):
        inputs, targets = batches[step - 1]
        lr = learning_rate(step, a.lr, a.warmup, a.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr

        sync()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = model(inputs, targets)
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        if a.clip > 0:
            grad_norm = float(nn.utils.clip_grad_norm_(params, a.clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))
        optimizer.step()
        sync()
        t3 = time.perf_counter()

        seconds = t3 - t0
        tokens_per_s = tokens_per_step / seconds
        r = {
            "step": step, "loss": float(loss), "lr": lr, "grad_norm": grad_norm,
            "tokens_per_s": tokens_per_s,
            "model_gflops": flops_per_token * tokens_per_s / 1e9,
            "ms_forward": 1e3 * (t1 - t0), "ms_backward": 1e3 * (t2 - t1),
            "ms_comm_exposed": 0.0, "ms_comm": 0.0,
            "ms_optimizer": 1e3 * (t3 - t2), "ms_step": 1e3 * seconds, "comm_hidden": 1.0,
        }
        records.append(r)
        if a.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"step {step:4d}/{a.steps} | loss {r['loss']:.4f} | lr {lr:.2e} | "
                  f"{tokens_per_s:.0f} tok/s | fwd {r['ms_forward']:.1f} "
                  f"bwd {r['ms_backward']:.1f} opt {r['ms_optimizer']:.1f} ms | "
                  f"norm {grad_norm:.3f}", flush=True)

    s = summarize(records)
    s["time_s"] = time.perf_counter() - start
    s["torch_threads"] = torch.get_num_threads()
    s["openblas_threads"] = openblas_threads
    if a.json:
        print(json.dumps({"summary": s}))
    print(f"summary: steps={s['steps']} loss={s['loss']:.4f} tokens_per_s={s['tokens_per_s']:.1f}"
          f" model_gflops={s['model_gflops']:.2f} ms_step={s['ms_step']:.1f}"
          f" time_s={s['time_s']:.1f} torch_threads={s['torch_threads']}"
          f" openblas_threads={openblas_threads}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
