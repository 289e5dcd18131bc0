#!/usr/bin/python3
"""Golden fixtures for engine/cflow: the published CFLOW-AD decoder, run by torch.

    /usr/bin/python3 engine/cflow/testdata/gen_golden.py CFLOW_AD FREIA [OUT.npz]

CFLOW_AD is a checkout of gudovskiy/cflow-ad, FREIA one of vislearn/FrEIA at commit
cc5cf5e (the commit cflow-ad names; FrEIA's master changed the soft clamp in 2023 and gives
other numbers). Both stay outside this repository; their modules are imported, not copied.
Debian's python3-torch 1.13 and python3-scipy run it offline in a few seconds.

For each case (name, channels C, condition dims P, coupling blocks, fibers N) it builds one
decoder with cflow-ad's own freia_cflow_head (seeded torch and numpy generators), feeds N
random fibers with their positional-encoding conditions and writes, as float32 unless noted:

  {case}_b{k}_{W1,b1,W2,b2,scale,offset,rot}  block k's parameters (torch layouts: W1 [hid][in],
                                               W2 [2*C2][hid], scale = global_scale [C] before
                                               softplus, offset [C], rot = w_perm [C][C])
  {case}_x, {case}_c                           the fibers [N][C] and conditions [N][P]
  {case}_z, {case}_logdet, {case}_logprob      outputs [N][C], [N], [N] (log p / C)
  {case}_loss                                  mean of -logsigmoid(log p / C), [1]
  {case}_g_b{k}_{W1,b1,W2,b2,scale,offset}     gradients of the loss
  {case}_steps_loss                            the loss before each of STEPS Adam steps (lr LR)
  {case}_after_b{k}_{...}                      the parameters after those steps
  posenc_{P}_{H}_{W}                           positionalencoding2d(P, H, W), [P][H][W]
  schedule_lr                                  float64 [25][8][6]: the learning rate of image batch i
                                               of sub-epoch s of meta-epoch e (lr 2e-4, 6 batches),
                                               by the published adjust_learning_rate and
                                               warmup_learning_rate with main.py's settings
"""
import os
import sys
import types

import numpy as np

STEPS, LR = 3, 1e-2
CASES = [("even", 16, 8, 2, 8), ("odd", 15, 8, 3, 6)]
POSENC = [(8, 3, 5), (128, 4, 6)]


def schedule(adjust, warmup, meta_epochs=25, sub_epochs=8, batches=6):
    """The published learning rates, set as main.py sets its config."""
    import math
    c = types.SimpleNamespace(lr=2e-4, meta_epochs=meta_epochs, sub_epochs=sub_epochs, lr_decay_rate=0.1,
                              lr_decay_epochs=[i * meta_epochs // 100 for i in [50, 75, 90]],
                              lr_warm_epochs=2, lr_warm=True, lr_cosine=True)
    c.lr_warmup_from = c.lr / 10.0
    eta_min = c.lr * (c.lr_decay_rate ** 3)
    c.lr_warmup_to = eta_min + (c.lr - eta_min) * (1 + math.cos(math.pi * c.lr_warm_epochs / c.meta_epochs)) / 2
    opt = types.SimpleNamespace(param_groups=[{"lr": 0.0}])
    out = np.zeros((meta_epochs, sub_epochs, batches))
    for e in range(meta_epochs):
        adjust(c, opt, e)
        for s in range(sub_epochs):
            for i in range(batches):
                out[e, s, i] = warmup(c, e, i + s * batches, batches * sub_epochs, opt)
    return out


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    cflow, freia = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) == 4 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.npz")
    # FrEIA imports graphviz and cflow-ad's model.py timm, for plotting and other encoders only.
    sys.modules.setdefault("graphviz", types.ModuleType("graphviz"))
    sys.modules.setdefault("timm", types.ModuleType("timm"))
    sys.path[:0] = [freia, cflow]
    import torch
    from model import freia_cflow_head, positionalencoding2d  # cflow-ad/model.py
    from utils import get_logp  # cflow-ad/utils.py
    from custom_models.utils import adjust_learning_rate, warmup_learning_rate
    torch.set_num_threads(1)

    arrays = {}
    for p, h, w in POSENC:
        arrays[f"posenc_{p}_{h}_{w}"] = positionalencoding2d(p, h, w).numpy()

    for name, c, p, blocks, n in CASES:
        class Cfg:  # the fields freia_cflow_head reads (main.py's values but the sizes)
            coupling_blocks = blocks
            clamp_alpha = 1.9
            condition_vec = p
        np.random.seed(len(name))
        torch.manual_seed(c)
        dec = freia_cflow_head(Cfg, c)
        # fibers as train.py gathers them: [B, C, H, W] -> [B*H*W, C], conditions alike
        bsz, hh, ww = 2, 2, 3
        e = torch.randn(bsz, c, hh, ww)
        pe = positionalencoding2d(p, hh, ww).unsqueeze(0).repeat(bsz, 1, 1, 1)
        e_r = e.reshape(bsz, c, hh * ww).transpose(1, 2).reshape(-1, c)
        c_r = pe.reshape(bsz, p, hh * ww).transpose(1, 2).reshape(-1, p)
        idx = torch.randperm(e_r.shape[0])[:n]
        x, cond = e_r[idx].contiguous(), c_r[idx].contiguous()

        def params(prefix):
            for k, m in enumerate(dec.module_list):
                sn = m.subnet
                for key, t in (("W1", sn[0].weight), ("b1", sn[0].bias), ("W2", sn[2].weight), ("b2", sn[2].bias),
                               ("scale", m.global_scale), ("offset", m.global_offset), ("rot", m.w_perm)):
                    yield f"{prefix}_b{k}_{key}", t

        for key, t in params(name):
            arrays[key] = t.detach().numpy().reshape(t.shape[-2:] if key.endswith(("W1", "W2", "rot")) else (-1,)).copy()
        arrays[f"{name}_x"], arrays[f"{name}_c"] = x.numpy(), cond.numpy()

        def loss_of():
            z, ljd = dec(x, [cond])
            lp = get_logp(c, z, ljd) / c
            return z, ljd, lp, (-torch.nn.LogSigmoid()(lp)).mean()

        opt = torch.optim.Adam([t for t in dec.parameters() if t.requires_grad], lr=LR)
        z, ljd, lp, loss = loss_of()
        arrays[f"{name}_z"], arrays[f"{name}_logdet"] = z.detach().numpy(), ljd.detach().numpy()
        arrays[f"{name}_logprob"], arrays[f"{name}_loss"] = lp.detach().numpy(), loss.detach().numpy().reshape(1)
        opt.zero_grad()
        loss.backward()
        for key, t in params(name):
            if t.grad is not None:
                arrays[key.replace(f"{name}_", f"{name}_g_", 1)] = t.grad.numpy().reshape(-1).copy()
        losses = []
        for step in range(STEPS):
            if step > 0:
                _, _, _, loss = loss_of()
                opt.zero_grad()
                loss.backward()
            losses.append(loss.item())
            opt.step()
        arrays[f"{name}_steps_loss"] = np.array(losses, dtype=np.float32)
        for key, t in params(name):
            if t.requires_grad:
                arrays[key.replace(f"{name}_", f"{name}_after_", 1)] = t.detach().numpy().reshape(-1).copy()

    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
    arrays["schedule_lr"] = schedule(adjust_learning_rate, warmup_learning_rate)
    np.savez(out, **arrays)
    print(f"{out}: {len(arrays)} arrays, torch {torch.__version__}")


if __name__ == "__main__":
    main()
