#!/usr/bin/python3
"""Training-step speed of the published CFLOW-AD decoder, the torch side of
scripts/cflow_step_speed.sh (engine/cflow's BenchmarkTrainerStep is ours).

    CFLOW_AD=/path/cflow-ad FREIA=/path/FrEIA /usr/bin/python3 scripts/cflow_step_speed.py \
        [--threads 2] [--channels 512,1024,2048] [--steps 20,10,5] [--warmup 2]

CFLOW_AD is a checkout of gudovskiy/cflow-ad, FREIA one of vislearn/FrEIA at commit cc5cf5e
(as for engine/cflow/testdata/gen_golden.py; FrEIA's graphviz and model.py's timm imports are
stubbed). Run it with Debian's torch 1.13 (/usr/bin/python3), offline.

For each channel count C it builds the decoder with cflow-ad's own freia_cflow_head (8
AllInOneBlocks, clamp 1.9, SOFTPLUS global affine, subnet_fc, condition 128 dims) and times
the published training step of train.py on a batch of 256 random fibers [256][C] with random
conditions [256][128]: z, logdet = decoder(x, [c]); log p = get_logp(C, z, logdet);
loss = -logsigmoid(log p / C); optimizer.zero_grad(); loss.mean().backward();
optimizer.step() with torch.optim.Adam(lr 2e-4). Prints one JSON line per C (fibers_per_second
= 256 * steps / seconds). OpenBLAS (torch's BLAS here) gets OPENBLAS_NUM_THREADS=threads
unless it is set; OPENBLAS_CORETYPE is taken from the environment.
"""
import argparse
import json
import os
import sys
import time
import types

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--channels", default="512,1024,2048")
ap.add_argument("--steps", default="20,10,5", help="timed steps per channel count (last value repeats)")
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--fibers", type=int, default=256)
ap.add_argument("--cond", type=int, default=128)
ap.add_argument("--blocks", type=int, default=8)
a = ap.parse_args()

cflow, freia = os.environ.get("CFLOW_AD"), os.environ.get("FREIA")
if not cflow or not freia:
    sys.exit("cflow_step_speed.py: set CFLOW_AD (checkout of gudovskiy/cflow-ad) and FREIA "
             "(checkout of vislearn/FrEIA at cc5cf5e)")
# torch's OpenBLAS starts its own pthreads (not OpenMP's): pin them before torch loads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
# FrEIA imports graphviz and cflow-ad's model.py timm, for plotting and other encoders only.
sys.modules.setdefault("graphviz", types.ModuleType("graphviz"))
sys.modules.setdefault("timm", types.ModuleType("timm"))
sys.path[:0] = [freia, cflow]

import contextlib  # noqa: E402
import io  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from model import freia_cflow_head  # noqa: E402  cflow-ad/model.py
from utils import get_logp  # noqa: E402  cflow-ad/utils.py

torch.set_num_threads(a.threads)
log_theta = torch.nn.LogSigmoid()  # as train.py


class Cfg:  # the fields freia_cflow_head reads, main.py's values
    coupling_blocks = a.blocks
    clamp_alpha = 1.9
    condition_vec = a.cond


channels = [int(v) for v in a.channels.split(",")]
steps = [int(v) for v in a.steps.split(",")]
for i, C in enumerate(channels):
    np.random.seed(0)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # freia_cflow_head prints 'CNF coder: C'
        decoder = freia_cflow_head(Cfg, C)
    decoder.train()
    optimizer = torch.optim.Adam([t for t in decoder.parameters() if t.requires_grad], lr=2e-4)
    e_p, c_p = torch.randn(a.fibers, C), torch.rand(a.fibers, a.cond)

    def step():
        z, log_jac_det = decoder(e_p, [c_p, ])
        decoder_log_prob = get_logp(C, z, log_jac_det)
        log_prob = decoder_log_prob / C  # likelihood per dim
        loss = -log_theta(log_prob)
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()

    for _ in range(a.warmup):
        step()
    k = steps[min(i, len(steps) - 1)]
    t0 = time.perf_counter()
    for _ in range(k):
        step()
    dt = time.perf_counter() - t0
    print(json.dumps({"impl": "cflow-ad + FrEIA, torch %s" % torch.__version__, "C": C, "P": a.cond,
                      "blocks": a.blocks, "fibers": a.fibers, "threads": torch.get_num_threads(),
                      "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""), "steps": k,
                      "seconds_per_step": dt / k, "fibers_per_second": a.fibers * k / dt}), flush=True)
