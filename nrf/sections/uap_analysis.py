"""Section "Why universal perturbations exist" (Part II, CVPR 2017): II-F5 random versus
universal, II-T6 the fine-tuning defence, II-F7 the normal vectors of the decision boundary.

All three look at the natural ResNet-18 and its Algorithm 1 perturbation from the previous
section (shared through the store: same model, X, xi and solver settings give the same
artifact), scored by the fooling rate P(C(x + v) != C(x)) on held-out test images.
"""

import copy

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import attacks, profiles, store, zoo
from ..data import crop_flip, to_float
from ..models import save_atomic
from ..runtime import autocast, default_device, generator
from ..train import derive_seed
from . import uap

# Per profile. F5: radii are `scales` times xi; `draws` random perturbations per radius;
# `recompute` also solves Algorithm 1 afresh at every radius (not only rescales the one at xi).
# T6: `rounds` of `ft_epochs` epochs of fine-tuning at `ft_lr` on `ft_size` training images
# (None: all), each image perturbed with probability 1/2 by one of `pool` perturbations.
# F7: DeepFool normals at `n_normals` training points; random vectors from the span of the top
# `dims` singular vectors. The smoke profile evaluates on 500 test images, rescales only,
# fine-tunes on 1,000 images for one epoch per round and collects 128 normals.
DEFAULTS = {
    "smoke": {**uap.SOLVER["smoke"], "norm": "l2", "xi_l2": uap.XI["l2"], "xi_linf": uap.XI["linf"], "n_eval": 500,
              "scales": [0.5, 1.0, 2.0, 4.0], "draws": 4, "recompute": False,
              "rounds": 2, "ft_epochs": 1, "ft_lr": 0.01, "ft_size": 1000, "pool": 1,
              "n_normals": 128, "dims": [10, 50]},
    "paper": {**uap.SOLVER["paper"], "norm": "l2", "xi_l2": uap.XI["l2"], "xi_linf": uap.XI["linf"], "n_eval": None,
              "scales": [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0], "draws": 10, "recompute": True,
              "rounds": 5, "ft_epochs": 5, "ft_lr": 0.01, "ft_size": None, "pool": 10,
              "n_normals": 10000, "dims": [10, 50, 100, 500]},
}


DEEPFOOL_CHUNK = 1024  # images per DeepFool call: bounds the memory of its backward passes


def _fooling(model, x, clean, vs) -> torch.Tensor:
    """Fooling rate on images x (float, on the model's device; clean = C(x)) of each v in vs [P, C, H, W]."""
    return torch.tensor([(attacks.predict(model, (x + v.to(x.device)).clamp(0, 1)) != clean).float().mean().item()
                         for v in vs])


def _rescale(v: torch.Tensor, norm: str, radius: float) -> torch.Tensor:
    size = v.norm() if norm == "l2" else v.abs().max()
    return v * (radius / size.clamp_min(1e-12))


def run(profile: str = "smoke", *, device=None, progress: bool = True, **params) -> dict:
    """Compute (or load) II-F5, II-T6 and II-F7; returns what the page renders.

    Parameters: the options of DEFAULTS (None = the profile's value) and the profile's model
    settings (data, width, epochs, seed, ...; see nrf.profiles)."""
    opts, overrides = uap.options(profile, params, DEFAULTS)
    opts["scales"] = sorted(set(opts["scales"]) | {1.0})  # xi itself is always measured
    cfg = profiles.settings(profile, **overrides)
    device = torch.device(device) if device is not None else default_device()
    train_data, test_data = zoo.load_data(cfg["data"])
    for name in ("n_train", "n_normals", "ft_size"):
        if opts[name] is not None and opts[name] > len(train_data):
            raise ValueError(f"{name} must be at most the {len(train_data)} training images, got {opts[name]}")
    if opts["n_eval"] is not None and opts["n_eval"] > len(test_data):
        raise ValueError(f"n_eval must be at most the {len(test_data)} test images, got {opts['n_eval']}")
    dim = train_data.x[0].numel()
    if opts["dims"][-1] > min(opts["n_normals"], dim):
        raise ValueError(f"dims must be at most min(n_normals, pixels x channels) = {min(opts['n_normals'], dim)}, "
                         f"got {opts['dims']}")

    (model, spec, meta), = uap.load_models(cfg, ["natural"], train_data, test_data, device, progress).values()
    norm, xi = opts["norm"], {"l2": opts["xi_l2"], "linf": opts["xi_linf"]}
    solver = {"max_passes": opts["max_passes"], "delta": opts["delta"], "batch_size": opts["uap_batch"],
              "seed": opts["uap_seed"], "progress": progress}
    base = {"model": spec, "test": test_data.identity, "n_eval": opts["n_eval"], "n_train": opts["n_train"],
            **{k: v for k, v in solver.items() if k != "progress"}}
    index = uap.eval_index(test_data, opts["n_eval"])
    x_eval = to_float(test_data.x[index].to(device))
    y_eval, shape = test_data.y[index], x_eval.shape[1:]
    clean = []  # C(x) on the evaluation images, computed on first use (a stored result needs none)

    def fooling(vs):
        if not clean:
            clean.append(attacks.predict(model, x_eval))
        return _fooling(model, x_eval, clean[0], vs)

    def solve(net, norm, radius, seed=opts["uap_seed"]):
        return attacks.uap(net, train_data.x[uap.pick(train_data, opts["n_train"], seed)], xi=radius, norm=norm,
                           delta=opts["delta"], max_passes=opts["max_passes"], overshoot=uap.OVERSHOOT, batched=True,
                           batch_size=opts["uap_batch"], seed=seed, progress=progress)[0]

    # II-F5: random versus universal, fooling rate against the norm.
    found, found_params = uap.universal(model, spec, train_data, n=opts["n_train"], norm=norm, xi=xi[norm], **solver)
    f5_params = {**base, "norm": norm, "xi": xi[norm], "scales": opts["scales"], "draws": opts["draws"],
                 "recompute": opts["recompute"]}

    def f5(_workdir):
        radii = [s * xi[norm] for s in opts["scales"]]
        gen = generator(opts["uap_seed"])
        noise = uap.random_direction(norm, 1.0, (opts["draws"], *shape), gen)
        out = {"radii": radii,
               "random": torch.stack([fooling(r * noise) for r in tqdm(
                   radii, desc="random", disable=not progress)], dim=1),  # [draws, radii]
               "scaled": fooling([_rescale(found["v"], norm, r) for r in radii]),
               "recomputed": None}
        if opts["recompute"]:
            out["recomputed"] = fooling([solve(model, norm, r) for r in radii])
        return out

    random_vs_universal = store.fetch("uap-random", f5_params, f5)

    # II-T6: fine-tuning on clean and universally perturbed images, for a few rounds.
    t6_params = {**base, "norm": norm, "xi": xi[norm], "rounds": opts["rounds"], "ft_epochs": opts["ft_epochs"],
                 "ft_lr": opts["ft_lr"], "ft_size": opts["ft_size"], "pool": opts["pool"],
                 "ft_batch": cfg["batch_size"], "weight_decay": cfg["weight_decay"]}

    def t6(workdir):
        net, path = copy.deepcopy(model), workdir / "rounds.pt"
        state = {"rounds": [], "pool": None, "model": None}
        if path.exists():  # resume after the last finished round
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state["model"])
        first_v = state["rounds"][0]["v"] if state["rounds"] else None
        for r in tqdm(range(len(state["rounds"]), opts["rounds"] + 1), desc="fine-tuning rounds", disable=not progress):
            if r > 0:
                finetune(net, train_data, state["pool"], epochs=opts["ft_epochs"], lr=opts["ft_lr"],
                         size=opts["ft_size"], batch_size=cfg["batch_size"], weight_decay=cfg["weight_decay"],
                         seed=derive_seed(opts["uap_seed"], r), device=device, progress=progress)
            # round 0's first perturbation is the shared one of II-F5 (same model, X and seed)
            pool = torch.stack([found["v"] if r == 0 and k == 0 else solve(net, norm, xi[norm], opts["uap_seed"] + k)
                                for k in range(opts["pool"])]).cpu()
            first_v = pool[0] if first_v is None else first_v
            clean_r = attacks.predict(net, x_eval)
            state["rounds"].append({
                "v": pool[0],
                "fooling": _fooling(net, x_eval, clean_r, pool[:1]).item(),  # the fresh perturbation
                "fooling_first": _fooling(net, x_eval, clean_r, first_v[None]).item(),  # round 0's one
                "clean_acc": (clean_r.cpu() == y_eval).float().mean().item()})
            state["pool"], state["model"] = pool, {k: v.cpu() for k, v in net.state_dict().items()}
            save_atomic(state, path)
        return {"rounds": state["rounds"]}

    defence = store.fetch("uap-finetune", t6_params, t6)

    # II-F7: singular values of the DeepFool normals, and random vectors from their top span.
    f7_params = {**base, "xi": xi["l2"], "n_normals": opts["n_normals"], "dims": opts["dims"], "draws": opts["draws"]}

    def f7(_workdir):
        x = train_data.x[uap.pick(train_data, opts["n_normals"], opts["uap_seed"])]
        r = torch.cat([attacks.deepfool(model, x[i:i + DEEPFOOL_CHUNK].to(device), norm="l2").flatten(1)
                       for i in tqdm(range(0, len(x), DEEPFOOL_CHUNK), desc="deepfool", disable=not progress)])
        lengths = r.norm(dim=1)
        normals = r[lengths > 0] / lengths[lengths > 0, None]
        _, s_normals, vh = torch.linalg.svd(normals, full_matrices=False)
        gen = generator(opts["uap_seed"], device)
        rand = torch.randn(normals.shape, generator=gen, device=device)
        s_random = torch.linalg.svdvals(rand / rand.norm(dim=1, keepdim=True))

        def draw(basis=None):  # draws of norm xi, uniform on the sphere of span(basis) (None: of all)
            z = torch.randn(opts["draws"], normals.shape[1] if basis is None else len(basis), generator=gen,
                            device=device)
            z = z if basis is None else z @ basis
            return (xi["l2"] * z / z.norm(dim=1, keepdim=True)).view(opts["draws"], *shape)

        return {"singular_normals": s_normals.cpu(), "singular_random": s_random.cpu(), "kept": len(normals),
                "median_length": lengths.median().item(),  # the typical per-image minimal l2 perturbation
                "subspace": torch.stack([fooling(draw(vh[:k])) for k in opts["dims"]]),  # [dims, draws]
                "unconstrained": fooling(draw()),
                "top": vh[:4].view(4, *shape).cpu()}

    normals = store.fetch("uap-normals", f7_params, f7)

    hardware = {meta["provenance"]["hardware"], uap.hardware_of("uap-perturbation", found_params),
                *(uap.hardware_of(s, p) for s, p in (("uap-random", f5_params), ("uap-finetune", t6_params),
                                                       ("uap-normals", f7_params)))}
    return {"cfg": cfg, "opts": opts, "train": train_data, "test": test_data, "hardware": hardware,
            "model": meta, "xi": xi, "norm": norm, "universal": found, "random_vs_universal": random_vs_universal,
            "defence": defence, "normals": normals}


def finetune(net, train_data, pool, *, epochs, lr, size, batch_size, weight_decay, seed, device, progress=True):
    """Fine-tune `net` in place with SGD: every training image (random crop and flip) gets, with
    probability 1/2, a perturbation drawn from `pool` [P, C, H, W], keeping its true label."""
    index = torch.arange(len(train_data)) if size is None else uap.pick(train_data, size, seed)
    x, y, pool = train_data.x[index].to(device), train_data.y[index].to(device), pool.to(device)
    g = generator(seed, device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    net.train()
    for _ in tqdm(range(epochs), desc="fine-tuning", disable=not progress):
        order = torch.randperm(len(y), generator=g, device=device)
        for i in range(0, len(y), batch_size):
            b = order[i:i + batch_size]
            xb = to_float(crop_flip(x[b], generator=g))
            which = torch.randint(len(pool), (len(b),), generator=g, device=device)
            on = torch.rand(len(b), generator=g, device=device) < 0.5
            xb = torch.where(on[:, None, None, None], (xb + pool[which]).clamp(0, 1), xb)
            with autocast(device):
                loss = F.cross_entropy(net(xb).float(), y[b])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    net.eval()
