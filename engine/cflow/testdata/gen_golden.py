#!/usr/bin/python3
"""Golden fixtures for engine/cflow: the published CFLOW-AD decoder, run by torch.

    /usr/bin/python3 engine/cflow/testdata/gen_golden.py CFLOW_AD FREIA [OUT.npz]
    /usr/bin/python3 engine/cflow/testdata/gen_golden.py --maps [OUT.npz]
    /usr/bin/python3 engine/cflow/testdata/gen_golden.py --joint CFLOW_AD FREIA [OUT.npz]

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

--maps needs no checkout: it writes golden_maps.npz (or OUT.npz), the published test-time
anomaly maps (train.py after test_meta_epoch, restated in plain torch) of MAPS_N images from
seeded log p / C values (normal * 3 - 1) of the layers MAPS_LAYERS (H, W), upsampled to
MAPS_SIZE x MAPS_SIZE:

  maps_logp_{l}                                layer l's log p / C, float32 [N][H][W]
  maps_super                                   super_mask, float64 [N][SIZE][SIZE]
  maps_score                                   the image scores (each map's maximum), float64 [N]

--joint writes golden_joint.npz (or OUT.npz): the published training's one torch.optim.Adam
over all decoders' parameters (train.py), whose zero_grad() (torch 1.13) leaves zero, not
None, gradients, so each step also moves every decoder that has had a gradient before. It
builds the decoders JOINT_DECODERS (channels C, condition dims P, coupling blocks) as above,
then takes the steps JOINT_STEPS (decoder l, lr): the param groups' lr set to lr,
zero_grad(), the loss of JOINT_N fibers of decoder l, backward(), step(). As float32 unless
noted:

  joint{l}_b{k}_{W1,b1,W2,b2,scale,offset,rot} decoder l's initial parameters (as above)
  joint{l}_x, joint{l}_c                       the fibers [S_l*N][C_l] and conditions [S_l*N][P]
                                               of decoder l's S_l steps, in their order
  joint_decoder, joint_lr                      each step's decoder (int64 [S]) and lr (float64 [S])
  joint_loss                                   each step's loss before its update, [S]
  joint{l}_after_b{k}_{...}                    decoder l's parameters after all the steps
  joint{l}_adam_steps                          torch's step count of decoder l's parameters
                                               (its first W1's state['step']) at the end, [1]
"""
import os
import sys
import types

import numpy as np

STEPS, LR = 10, 1e-2
CASES = [("even", 16, 8, 2, 8), ("odd", 15, 8, 3, 6)]
POSENC = [(8, 3, 5), (128, 4, 6)]
MAPS_N, MAPS_LAYERS, MAPS_SIZE = 3, [(6, 5), (3, 3), (2, 2)], 20
JOINT_DECODERS = [(16, 8, 2), (12, 8, 2)]
JOINT_STEPS = [(0, 2e-3), (0, 2e-3), (0, 1e-3), (1, 1e-3), (1, 1e-3), (0, 5e-4), (1, 5e-4), (1, 5e-4), (1, 5e-4)]
JOINT_N, JOINT_GRID = 8, (4, 4)


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


def maps(out):
    """The published anomaly maps, as train.py computes them from test_dist, in plain torch."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    rng = np.random.default_rng(7)
    arrays, test_map = {}, []
    for l, (h, w) in enumerate(MAPS_LAYERS):
        lp = (rng.standard_normal((MAPS_N, h, w)) * 3 - 1).astype(np.float32)
        arrays[f"maps_logp_{l}"] = lp
        test_dist = lp.reshape(-1).tolist()  # log_prob.detach().cpu().tolist(), image-major
        test_norm = torch.tensor(test_dist, dtype=torch.double)
        test_norm -= torch.max(test_norm)
        test_prob = torch.exp(test_norm)
        test_mask = test_prob.reshape(-1, h, w)
        test_map.append(F.interpolate(test_mask.unsqueeze(1), size=(MAPS_SIZE, MAPS_SIZE), mode='bilinear',
                                      align_corners=True).squeeze().numpy())
    score_map = np.zeros_like(test_map[0])
    for m in test_map:
        score_map += m
    score_mask = score_map
    super_mask = score_mask.max() - score_mask
    arrays["maps_super"] = super_mask
    arrays["maps_score"] = np.max(super_mask, axis=(1, 2))
    np.savez(out, **arrays)
    print(f"{out}: {len(arrays)} arrays, torch {torch.__version__}")


def published(cflow, freia):
    """Imports cflow-ad's and FrEIA's modules from their checkouts."""
    # FrEIA imports graphviz and cflow-ad's model.py timm, for plotting and other encoders only.
    sys.modules.setdefault("graphviz", types.ModuleType("graphviz"))
    sys.modules.setdefault("timm", types.ModuleType("timm"))
    sys.path[:0] = [freia, cflow]
    import torch
    torch.set_num_threads(1)


def block_params(dec, prefix):
    """The parameters of each coupling block k of dec, as (f"{prefix}_b{k}_{key}", tensor)."""
    for k, m in enumerate(dec.module_list):
        sn = m.subnet
        for key, t in (("W1", sn[0].weight), ("b1", sn[0].bias), ("W2", sn[2].weight), ("b2", sn[2].bias),
                       ("scale", m.global_scale), ("offset", m.global_offset), ("rot", m.w_perm)):
            yield f"{prefix}_b{k}_{key}", t


def param_array(key, t):
    """A parameter as saved: matrices [rows][cols], the rest flat."""
    return t.detach().numpy().reshape(t.shape[-2:] if key.endswith(("W1", "W2", "rot")) else (-1,)).copy()


def joint(cflow, freia, out):
    """The published joint Adam over several decoders (train.py), step by step."""
    published(cflow, freia)
    import torch
    from model import freia_cflow_head, positionalencoding2d  # cflow-ad/model.py
    from utils import get_logp  # cflow-ad/utils.py

    arrays, decoders = {}, []
    for l, (c, p, blocks) in enumerate(JOINT_DECODERS):
        class Cfg:  # the fields freia_cflow_head reads (main.py's values but the sizes)
            coupling_blocks = blocks
            clamp_alpha = 1.9
            condition_vec = p
        np.random.seed(100 + l)
        torch.manual_seed(200 + l)
        dec = freia_cflow_head(Cfg, c)
        decoders.append(dec)
        for key, t in block_params(dec, f"joint{l}"):
            arrays[key] = param_array(key, t)

    # train.py: params = list(decoders[0].parameters()) + ..., optimizer = torch.optim.Adam(params, lr=c.lr)
    params = []
    for dec in decoders:
        params += list(dec.parameters())
    optimizer = torch.optim.Adam(params, lr=JOINT_STEPS[0][1])

    torch.manual_seed(300)
    xs, cs = [[] for _ in decoders], [[] for _ in decoders]
    losses = []
    for l, lr in JOINT_STEPS:
        c, p, _ = JOINT_DECODERS[l]
        # fibers of decoder l and the conditions of random positions of a JOINT_GRID map
        x = torch.randn(JOINT_N, c)
        pe = positionalencoding2d(p, *JOINT_GRID).reshape(p, -1).t()
        cond = pe[torch.randint(pe.shape[0], (JOINT_N,))].contiguous()
        xs[l].append(x.numpy())
        cs[l].append(cond.numpy())
        # train.py: warmup_learning_rate / adjust_learning_rate set every param group's lr
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        z, log_jac_det = decoders[l](x, [cond])
        decoder_log_prob = get_logp(c, z, log_jac_det)
        log_prob = decoder_log_prob / c
        loss = -torch.nn.LogSigmoid()(log_prob)
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
        losses.append(loss.mean().item())

    for l, dec in enumerate(decoders):
        arrays[f"joint{l}_x"], arrays[f"joint{l}_c"] = np.concatenate(xs[l]), np.concatenate(cs[l])
        for key, t in block_params(dec, f"joint{l}"):
            if t.requires_grad:
                arrays[key.replace(f"joint{l}_", f"joint{l}_after_", 1)] = t.detach().numpy().reshape(-1).copy()
        w1 = dec.module_list[0].subnet[0].weight
        arrays[f"joint{l}_adam_steps"] = np.array([float(optimizer.state[w1]["step"])])
    arrays["joint_loss"] = np.array(losses)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
    arrays["joint_decoder"] = np.array([l for l, _ in JOINT_STEPS], dtype=np.int64)
    arrays["joint_lr"] = np.array([lr for _, lr in JOINT_STEPS], dtype=np.float64)
    np.savez(out, **arrays)
    print(f"{out}: {len(arrays)} arrays, torch {torch.__version__}")


def main():
    if len(sys.argv) in (2, 3) and sys.argv[1] == "--maps":
        maps(sys.argv[2] if len(sys.argv) == 3 else
             os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_maps.npz"))
        return
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--joint":
        joint(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) == 5 else
              os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_joint.npz"))
        return
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    cflow, freia = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) == 4 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.npz")
    published(cflow, freia)
    import torch
    from model import freia_cflow_head, positionalencoding2d  # cflow-ad/model.py
    from utils import get_logp  # cflow-ad/utils.py
    from custom_models.utils import adjust_learning_rate, warmup_learning_rate

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
            return block_params(dec, prefix)

        for key, t in params(name):
            arrays[key] = param_array(key, t)
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
