#!/usr/bin/python3
"""Independent reference for weft's GPT: the same model, initialisation, batches, AdamW, clipping
and learning-rate schedule, written in PyTorch, printing the loss of every step.

tests/unit/models/gpt_reference_test.cc holds this script's output and checks that weft's model
and optimizer reproduce it. Run it with Debian's python3-torch (/usr/bin/python3) to regenerate
the numbers after a deliberate change to the model:

    /usr/bin/python3 tests/reference/gpt_torch_reference.py
    /usr/bin/python3 tests/reference/gpt_torch_reference.py --check tests/unit/models/gpt_reference_test.cc

--check is the ctest models.gpt_torch_reference: it compares this run's losses with the ones the
C++ test holds, and exits 77 (ctest's skip) where torch is not installed. --self-test checks
only the reading and comparing, with no torch (ctest models.gpt_torch_reference_reader).

The initialisation re-implements models/gpt.cc's generator (SplitMix64 + Box-Muller, one stream
per tensor) so both sides start from the same weights without exchanging a file.
"""
import argparse
import math
import re
import sys

try:  # Debian's python3-torch brings numpy; without torch only --self-test can run.
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

SKIP = 77  # ctest's SKIP_RETURN_CODE for the check
# The C++ test allows weft 2e-6 (relative) from these numbers; the numbers themselves must be
# within half that of what torch computes, so weft stays close to torch, not only to a copy.
# (Another BLAS or thread count moves torch's last digit: ~1e-7 seen.)
CHECK_RTOL = 1e-6

LAYERS, C, NH, T, V, BATCH, STEPS = 2, 32, 2, 16, 256, 4, 8
LR, WARMUP, WEIGHT_DECAY, CLIP, SEED = 3e-3, 2, 0.1, 1.0, 1337
MASK = (1 << 64) - 1


def normal_stream(seed, n, std):
    state = seed & MASK
    out = np.empty(n, dtype=np.float32)

    def nxt():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform():
        return ((nxt() >> 11) + 1.0) * 2.0**-53

    for i in range(0, n, 2):
        r = math.sqrt(-2.0 * math.log(uniform()))
        a = 2 * math.pi * uniform()
        out[i] = r * math.cos(a) * std
        if i + 1 < n:
            out[i + 1] = r * math.sin(a) * std
    return out


def build_params():
    """(name, tensor, decay) in models/gpt_config.cc's order, initialised like Gpt::init_params."""
    std_w, std_proj = 0.02, np.float32(0.02) / np.float32(math.sqrt(2 * LAYERS))
    specs = [("wte", (V, C), True, std_w, 0), ("wpe", (T, C), True, std_w, 0)]
    for l in range(LAYERS):
        specs += [
            (f"h{l}.ln1.w", (C,), False, 0, 1), (f"h{l}.ln1.b", (C,), False, 0, 0),
            (f"h{l}.qkv.w", (3 * C, C), True, std_w, 0), (f"h{l}.qkv.b", (3 * C,), False, 0, 0),
            (f"h{l}.attn_proj.w", (C, C), True, std_proj, 0),
            (f"h{l}.attn_proj.b", (C,), False, 0, 0),
            (f"h{l}.ln2.w", (C,), False, 0, 1), (f"h{l}.ln2.b", (C,), False, 0, 0),
            (f"h{l}.fc.w", (4 * C, C), True, std_w, 0), (f"h{l}.fc.b", (4 * C,), False, 0, 0),
            (f"h{l}.fc_proj.w", (C, 4 * C), True, std_proj, 0),
            (f"h{l}.fc_proj.b", (C,), False, 0, 0),
        ]
    specs += [("lnf.w", (C,), False, 0, 1), ("lnf.b", (C,), False, 0, 0)]
    params = {}
    for index, (name, shape, decay, std, value) in enumerate(specs):
        n = int(np.prod(shape))
        if std > 0:
            data = normal_stream(SEED * 0x100000001B3 + index, n, float(np.float32(std)))
        else:
            data = np.full(n, value, dtype=np.float32)
        params[name] = (torch.tensor(data.reshape(shape), requires_grad=True), decay)
    return params


def batch(step):
    """The batches the C++ test builds: a fixed pseudo-random pattern, targets a function of
    the inputs so there is something to learn."""
    b = np.arange(BATCH)[:, None]
    t = np.arange(T)[None, :]
    inputs = (step * 131 + b * 31 + t * t * 7 + t * 3) % V
    targets = (inputs * 5 + 3) % V
    return torch.tensor(inputs).long(), torch.tensor(targets).long()


def forward(p, x, y):
    w = lambda name: p[name][0]
    h = w("wte")[x] + w("wpe")[: x.shape[1]]
    B = x.shape[0]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(LAYERS):
        a = F.layer_norm(h, (C,), w(f"h{l}.ln1.w"), w(f"h{l}.ln1.b"), 1e-5)
        q, k, v = (a @ w(f"h{l}.qkv.w").T + w(f"h{l}.qkv.b")).split(C, dim=2)
        q, k, v = (z.view(B, T, NH, C // NH).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1) / math.sqrt(C // NH)).masked_fill(mask, float("-inf"))
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        h = h + o @ w(f"h{l}.attn_proj.w").T + w(f"h{l}.attn_proj.b")
        a = F.layer_norm(h, (C,), w(f"h{l}.ln2.w"), w(f"h{l}.ln2.b"), 1e-5)
        a = F.gelu(a @ w(f"h{l}.fc.w").T + w(f"h{l}.fc.b"), approximate="tanh")
        h = h + a @ w(f"h{l}.fc_proj.w").T + w(f"h{l}.fc_proj.b")
    h = F.layer_norm(h, (C,), w("lnf.w"), w("lnf.b"), 1e-5)
    return F.cross_entropy((h @ w("wte").T).view(-1, V), y.reshape(-1))


def lr_at(step):
    if step <= WARMUP:
        return LR * step / WARMUP
    floor = 0.1 * LR
    progress = (step - WARMUP) / (STEPS - WARMUP)
    return floor + 0.5 * (LR - floor) * (1 + math.cos(math.pi * progress))


def train_losses():
    torch.set_num_threads(1)
    p = build_params()
    decay = [t for t, d in p.values() if d]
    no_decay = [t for t, d in p.values() if not d]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    losses = []
    for step in range(1, STEPS + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        x, y = batch(step)
        loss = forward(p, x, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decay + no_decay, CLIP)
        opt.step()
        losses.append(loss.item())
    return losses


def golden_losses(cc_path):
    """The kTorchLosses initializer of the C++ test, however clang-format wrapped it."""
    with open(cc_path) as f:
        m = re.search(r"kTorchLosses\s*=\s*\{([^}]*)\}", f.read())
    if not m:
        sys.exit(f"{cc_path}: no 'kTorchLosses = {{...}}' found: was the constant renamed?")
    return [float(v) for v in m.group(1).replace("\n", " ").split(",") if v.strip()]


def mismatches(golden, losses, rtol=CHECK_RTOL):
    """Lines naming each step where the two lists disagree beyond rtol (or their lengths)."""
    if len(golden) != len(losses):
        return [f"the C++ test holds {len(golden)} losses, this script makes {len(losses)}"]
    return [f"step {i}: C++ test {g:.7f}, torch {t:.7f}"
            for i, (g, t) in enumerate(zip(golden, losses), 1)
            if abs(g - t) > rtol * abs(t)]


def self_test(cc_path):
    golden = golden_losses(cc_path)
    assert len(golden) == STEPS and all(4 < v < 6 for v in golden), golden
    assert mismatches(golden, golden) == []
    assert mismatches(golden, [v * (1 + CHECK_RTOL / 2) for v in golden]) == []
    moved = list(golden)
    moved[2] += 1e-4
    assert mismatches(golden, moved) == [f"step 3: C++ test {golden[2]:.7f}, torch {moved[2]:.7f}"]
    assert "holds 8 losses, this script makes 7" in mismatches(golden, golden[:7])[0]
    print(f"ok: read {len(golden)} losses from {cc_path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="CC_FILE",
                      help="compare with the kTorchLosses of this C++ test; exit 1 if they differ")
    mode.add_argument("--self-test", metavar="CC_FILE",
                      help="check the reading and comparing only (needs no torch)")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.self_test)
    if torch is None:
        print("gpt_torch_reference.py needs PyTorch: run it with Debian's python3-torch "
              "(apt-get install python3-torch; `make bench-train` installs it) as /usr/bin/python3",
              file=sys.stderr)
        sys.exit(SKIP if args.check else 1)
    losses = train_losses()
    print("const std::vector<double> kTorchLosses = {" +
          ", ".join(f"{v:.7f}" for v in losses) + "};")
    if args.check:
        wrong = mismatches(golden_losses(args.check), losses)
        for line in wrong:
            print(line, file=sys.stderr)
        if wrong:
            sys.exit(f"{args.check}'s kTorchLosses differ from PyTorch's beyond {CHECK_RTOL:g} "
                     "(relative): paste the line above into it if the model changed on purpose")
        print(f"ok: {args.check} matches PyTorch within {CHECK_RTOL:g} (relative)")


if __name__ == "__main__":
    main()
