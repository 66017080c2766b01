"""Section "Transfer" (I-F6): do universal perturbations transfer less between models than standard ones?

Test images are perturbed on the natural ResNet-18 (the source) in two ways: a standard
perturbation per image (targeted PGD toward a seeded random target other than its label) and
each target's universal perturbation (the one the other Part I sections share), added to every
image. As PAPER.md counts it, for each target t only the perturbed images whose label is not t
and that the source sends to t are kept; the transfer rate is the share of those that a second
natural ResNet-18 (another seed) and a VGG16 also send to t. Claim 3: universal perturbations
transfer less than standard ones.
"""

import torch

from .. import attacks, claims, options, records, store, uaps, universals, zoo
from ..data import to_float
from ..options import Option
from ..runtime import bar, default_device, device_batch, device_of, generator

PGD_STEPS = 10  # the paper's standard perturbation: 10 steps of eps / 3, no restarts
SOURCE = "natural"
OTHERS = ("natural_seed1", "vgg16")
KINDS = ("standard", "universal")
WEAK = 0.6  # clean accuracy below which a model says little about the paper's trained models

# Smoke perturbs half of the 1000 sample test images, which keeps the standard perturbations
# (10 PGD steps each, the section's only gradient work besides the shared universal ones) to seconds.
OPTIONS = (
    options.MODELS
    + options.THREAT
    + options.UNIVERSAL
    + [
        Option(
            "targets",
            None,
            "target classes, names or indices (null: all); a standard perturbation aims at one "
            "of them, drawn per image",
            kind="classes",
            optional=True,
        ),
        Option(
            "n_test",
            {"smoke": 500, "medium": 2000, "paper": None},
            "test images perturbed, a seeded subset (null: all, as the paper)",
            kind="int",
            low=1,
            optional=True,
        ),
    ]
)


def draw_targets(labels: torch.Tensor, targets: list[int], seed: int) -> torch.Tensor:
    """One target per image, uniform over `targets` other than the image's label (seeded): the
    standard perturbations' targets, [n]. An image whose label is the only target keeps it (it is
    never counted, since its label is the target)."""
    t = torch.tensor(targets)
    allowed = (t[None, :] != labels[:, None]).float()  # [n, T]
    allowed[allowed.sum(1) == 0] = 1.0
    return t[torch.multinomial(allowed, 1, generator=generator(seed))[:, 0]]


def predictions(
    models: dict,
    specs: dict,
    test_data,
    deltas: torch.Tensor,
    targets: list[int],
    *,
    norm: str,
    eps: float,
    n_test: int | None,
    seed: int,
) -> dict:
    """Perturb n_test seeded test images (None: all) on the source model and record every model's
    labels, from the store or computed: {"index" [n], "labels" [n], "aimed" [n] (the standard
    perturbations' targets), "clean" {role: [n]}, "standard" {role: [n]}, "universal" {role: [T, n]}}.
    `deltas` [T, C, H, W]: the source's universal perturbation toward each of `targets`."""
    params = {
        "models": specs,
        "test": test_data.identity,
        "deltas": store.digest(deltas),
        "norm": norm,
        "eps": eps,
        "targets": targets,
        "n_test": n_test,
        "seed": seed,
        "steps": PGD_STEPS,
        "step_size": eps / 3,
    }

    def compute(_workdir) -> dict:
        n_all = len(test_data)
        index = (
            torch.arange(n_all)
            if n_test is None
            else torch.randperm(n_all, generator=generator(seed))[:n_test].sort().values
        )
        x, labels = test_data.x[index], test_data.y[index]
        aimed = draw_targets(labels, targets, seed)
        source = models[SOURCE]
        std, _ = attacks.perturb(
            source,
            x,
            aimed,
            norm=norm,
            eps=eps,
            step_size=eps / 3,
            epochs=PGD_STEPS,
            seed=seed,
            max_batch=device_batch(device_of(source)),
            desc="standard perturbations",
        )
        xf = to_float(x)  # on the CPU, as always here: a GPU's x / 255 may differ in the last bit
        out = {"index": index, "labels": labels, "aimed": aimed, "clean": {}, "standard": {}, "universal": {}}
        for role, model in bar(models.items(), desc="predict"):
            out["clean"][role] = attacks.predict(model, x)
            out["standard"][role] = attacks.classify(model, xf, std)
            out["universal"][role] = torch.stack([attacks.classify(model, xf, d) for d in deltas])
        return out

    return store.fetch("transfer", params, compute)


def tally(
    aimed: torch.Tensor, labels: torch.Tensor, source: torch.Tensor, others: dict, clean: dict, targets: list[int]
) -> dict:
    """PAPER.md's counts per target t, from flat per-attempt tensors [M] (attempt m aimed at aimed[m]):
    "attempts" (aimed at t, label not t) and "kept" (of those, sent to t by the source); per other
    model, of the kept ones: "hits" (it also sends them to t), "chance_hits" (it already predicts t
    on the clean image), "fresh" (it does not) and "fresh_hits" (those it sends to t: transfer
    that chance cannot explain). [T] integer tensors."""
    t = torch.tensor(targets)[:, None]
    attempts = (aimed[None] == t) & (labels[None] != t)  # [T, M]
    kept = attempts & (source[None] == t)
    sent = {r: kept & (p[None] == t) for r, p in others.items()}
    fresh = {r: kept & (clean[r][None] != t) for r in others}
    return {
        "attempts": attempts.sum(1),
        "kept": kept.sum(1),
        "hits": {r: s.sum(1) for r, s in sent.items()},
        "chance_hits": {r: (kept & ~fresh[r]).sum(1) for r in others},
        "fresh": {r: f.sum(1) for r, f in fresh.items()},
        "fresh_hits": {r: (fresh[r] & sent[r]).sum(1) for r in others},
    }


def _share(hits: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """hits / total per target, nan where total is 0."""
    return torch.where(total > 0, hits / total.clamp_min(1), torch.tensor(float("nan")))


def rates(counts: dict) -> dict:
    """The counts of `tally` with their shares: per target {role: [T]} "rate" (hits / kept), "chance"
    (chance_hits / kept) and "fresh_rate" (fresh_hits / fresh), nan where the denominator is 0;
    pooled over targets (counts summed) the same as floats under "pooled", "pooled_chance" and
    "pooled_fresh", and "pooled_kept", "pooled_attempts", "source_rate" (kept / attempts)."""
    kept, total = counts["kept"], counts["kept"].sum().item()
    out = {**counts, "rate": {}, "chance": {}, "fresh_rate": {}, "pooled": {}, "pooled_chance": {}, "pooled_fresh": {}}
    for r in counts["hits"]:
        out["rate"][r] = _share(counts["hits"][r], kept)
        out["chance"][r] = _share(counts["chance_hits"][r], kept)
        out["fresh_rate"][r] = _share(counts["fresh_hits"][r], counts["fresh"][r])
        out["pooled"][r] = counts["hits"][r].sum().item() / max(total, 1)
        out["pooled_chance"][r] = counts["chance_hits"][r].sum().item() / max(total, 1)
        out["pooled_fresh"][r] = counts["fresh_hits"][r].sum().item() / max(counts["fresh"][r].sum().item(), 1)
    attempts = counts["attempts"].sum().item()
    return {**out, "pooled_kept": total, "pooled_attempts": attempts, "source_rate": total / max(attempts, 1)}


def compare(standard: dict, universal: dict, role: str) -> dict:
    """The pooled transfer rates on `role` of the two kinds (PAPER.md's tally) with their
    denominators, and "wins": the targets where standard transfers more, of "compared" (targets
    with a denominator for both kinds)."""

    def pooled(kind):
        return kind["pooled"][role], kind["pooled_kept"], kind["rate"][role]

    (p1, n1, a), (p2, n2, b) = pooled(standard), pooled(universal)
    both = ~(a.isnan() | b.isnan())
    return {
        "standard": p1,
        "universal": p2,
        "n_standard": n1,
        "n_universal": n2,
        "wins": int((a[both] > b[both]).sum()),
        "compared": int(both.sum()),
    }


def paired(raw: dict, targets: list[int], role: str) -> dict:
    """Transfer of the two kinds on the same (image, target) pairs: each image with the target its
    standard perturbation aimed at (not its label), kept where BOTH its standard perturbation and
    the universal perturbation toward that target send it to the target on the source. The tally
    keeps different images for the two kinds (a universal perturbation is kept only on the images
    it moves, often ones already leaning to t); pairing compares like with like. Counts: "pairs",
    "standard" and "universal" (pairs `role` also sends to t), "only_standard", "only_universal"."""
    aimed, labels = raw["aimed"], raw["labels"]
    row = torch.tensor([targets.index(int(t)) for t in aimed])
    images = torch.arange(len(aimed))
    source = {"standard": raw["standard"][SOURCE], "universal": raw["universal"][SOURCE][row, images]}
    other = {"standard": raw["standard"][role], "universal": raw["universal"][role][row, images]}
    keep = (labels != aimed) & (source["standard"] == aimed) & (source["universal"] == aimed)
    s, u = keep & (other["standard"] == aimed), keep & (other["universal"] == aimed)
    return {
        "pairs": int(keep.sum()),
        "standard": int(s.sum()),
        "universal": int(u.sum()),
        "only_standard": int((s & ~u).sum()),
        "only_universal": int((u & ~s).sum()),
    }


def run(cfg: dict) -> dict:
    """Perturb test images on the natural ResNet-18 and count how often the perturbations transfer."""
    norm, eps = options.threat(cfg)
    train_data, test_data = zoo.load_data(cfg["data"])
    classes = list(train_data.classes)
    targets = options.class_indices(cfg["targets"], classes, "targets")
    if not targets:
        raise ValueError("option targets must name at least one class, got []")
    if cfg["n_test"] is not None and cfg["n_test"] > len(test_data):
        raise ValueError(f"option n_test must be at most the {len(test_data)} test images, got {cfg['n_test']}")
    universals.solver(cfg, len(train_data))  # checks base_size before anything trains

    device = default_device()
    specs = {role: zoo.recipe(cfg, role, train_data.identity) for role in (SOURCE, *OTHERS)}
    models, metas = {}, {}
    for role, spec in specs.items():
        models[role], metas[role] = zoo.trained(spec, train_data, test_data, device=device)
    seed = cfg["seed"]
    uni = universals.per_target(
        models[SOURCE],
        specs[SOURCE],
        train_data,
        test_data,
        norm=norm,
        eps=eps,
        targets=targets,
        seed=seed,
        **universals.solver(cfg, len(train_data)),
    )
    raw = predictions(
        models, specs, test_data, uni["deltas"], targets, norm=norm, eps=eps, n_test=cfg["n_test"], seed=seed
    )

    n = len(raw["index"])
    attempts = {
        "standard": (raw["aimed"], raw["labels"]),  # one per image
        "universal": (torch.tensor(targets).repeat_interleave(n), raw["labels"].repeat(len(targets))),
    }
    found = {}
    for kind, (aimed, labels) in attempts.items():  # flat over attempts, target-major for universal
        counts = tally(
            aimed,
            labels,
            raw[kind][SOURCE].flatten(),
            {r: raw[kind][r].flatten() for r in OTHERS},
            {r: raw["clean"][r].repeat(len(aimed) // n) for r in OTHERS},
            targets,
        )
        found[kind] = rates(counts)
    results = {
        "classes": classes,
        "targets": targets,
        "norm": norm,
        "eps": eps,
        "n_test": n,
        "n_test_all": len(test_data),
        "pgd_steps": PGD_STEPS,
        "source": SOURCE,
        "others": list(OTHERS),
        "clean_acc": {role: m["clean_acc"] for role, m in metas.items()},
        "universal_asr": uni["asr"],
        **found,
        "compare": {role: compare(found["standard"], found["universal"], role) for role in OTHERS},
        "paired": {role: paired(raw, targets, role) for role in OTHERS},
    }
    return {"results": results, "tensors": {}, "data": records.data_note(train_data, test_data)}


SENTENCE = "universal perturbations transfer much less"


def verdicts(rec: dict) -> list[claims.Verdict]:
    """Claim 3 (second half), per other model, on the paired (image, target) set: the standard
    perturbations' transfer rate exceeds the universal ones' by more than 2 s.e. (McNemar's paired
    difference). PAPER.md's pooled tally is shown beside it, not decided on."""
    r = rec["results"]
    accs = list(r["clean_acc"].values())
    caveat = (
        ""
        if min(accs) >= WEAK
        else f"; weak models ({100 * min(accs):.0f}% to {100 * max(accs):.0f}% clean "
        "accuracy) do not speak for the paper's"
    )
    found = []
    for role in r["others"]:
        name, c = uaps.ROLE_NAMES[role], r["compare"][role]
        tally = (
            f"the paper's tally (different kept images per kind): universal {100 * c['universal']:.1f}% of "
            f"{c['n_universal']:,}, standard {100 * c['standard']:.1f}% of {c['n_standard']:,}"
        )
        common = dict(claim=f"universal perturbations transfer less to the {name}", test="I-F6", unit="points")
        if "paired" not in r:
            found.append(
                claims.Verdict(
                    **common,
                    effect=None,
                    spread=None,
                    status="cannot be tested",
                    criterion=claims.quoted(
                        SENTENCE,
                        "standard minus universal transfer rate on the same (image, target) "
                        f"pairs, above 0 by more than {claims.K_SE} s.e. (McNemar)",
                    ),
                    detail=f"this record predates the paired comparison: recompute it; {tally}",
                )
            )
            continue
        p = r["paired"][role]
        d, se = claims.mcnemar(p["only_standard"], p["only_universal"], p["pairs"])
        test = claims.above(
            100 * d,
            100 * se,
            what=f"standard minus universal transfer rate to the {name} on the "
            "same (image, target) pairs, both sent to t by the source,",
        )
        criterion = claims.quoted(SENTENCE, test.criterion + " (McNemar)")
        if not p["only_standard"] + p["only_universal"]:
            found.append(
                claims.Verdict(
                    **common,
                    effect=None,
                    spread=None,
                    status="cannot be tested",
                    criterion=criterion,
                    detail=f"no discordant pairs among {p['pairs']:,} (image, target) pairs; {tally}",
                )
            )
            continue
        found.append(
            claims.Verdict(
                **common,
                effect=100 * d,
                spread=100 * se,
                status="holds" if test.passed else "does not hold",
                criterion=criterion,
                detail=(
                    f"on {p['pairs']:,} pairs: standard transfers on {p['standard']:,}, universal on "
                    f"{p['universal']:,} ({p['only_standard']:,} standard only, {p['only_universal']:,} universal "
                    f"only); {tally}{caveat}"
                ),
            )
        )
    return found
