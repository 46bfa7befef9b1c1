"""The GMP pruner: exact zero counts, hooks, finalize, resume, report and bad input.

ONNX export of a pruned model is tested in the repository's tests/gmp/test_export.py (it needs
onnx); the side-by-side runs with SparseML are in tests/gmp/test_vs_sparseml.py there.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from gmp import GMP, PruningModifierSpec, sparsity_report
from gmp.masks import n_zeros_for
from gmp.params import select_params
from gmp.report import layer_zeros
from gmp.schedule import sparsity_at, step_to_epoch, update_events
from gmp.testing import batches, make_cnn, train

SPE = 5


def _opt(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)


def _pruner(model, opt, **kw):
    settings = dict(
        init_sparsity=0.05,
        final_sparsity=0.8,
        start_epoch=1.0,
        end_epoch=4.0,
        update_frequency=0.4,
        steps_per_epoch=SPE,
    )
    settings.update(kw)
    return GMP(model, opt, **settings)


def test_zero_counts_follow_closed_form_schedule_every_step(cnn):
    opt = _opt(cnn)
    _pruner(cnn, opt)
    history = train(cnn, opt, batches(6 * SPE))
    numel = {n: getattr(m, a).numel() for n, m, a in select_params(cnn, "__ALL_PRUNABLE__")}
    expected, current = [], dict.fromkeys(numel, 0)
    events = {e.step: e for e in update_events(6 * SPE, SPE, 1.0, 4.0, 0.4)}
    for step in range(6 * SPE):
        if step in events:
            s = sparsity_at(step_to_epoch(step, SPE), 1.0, 4.0, 0.05, 0.8)
            current = {n: n_zeros_for(s, k) for n, k in numel.items()}
        expected.append(dict(current))
    assert history == expected
    assert history[-1]["fc1.weight"] == round(0.8 * 512 * 16)


def test_masks_only_grow_and_forward_sees_zeros(cnn):
    opt = _opt(cnn)
    pruner = _pruner(cnn, opt)
    seen = []
    cnn.fc1.register_forward_hook(
        lambda m, i, o: seen.append(bool((m.weight[m.weight_mask == 0] == 0).all()))
    )
    previous = pruner.masks()
    for batch in batches(6 * SPE):
        train(cnn, opt, [batch])
        now = pruner.masks()
        for name in now:
            assert not bool((now[name] & ~previous[name]).any()), name  # no regrowth
        previous = now
    assert len(seen) == 6 * SPE and all(seen)


def test_finalize_leaves_plain_weights_no_hooks_and_training_works(cnn):
    opt = _opt(cnn)
    pruner = _pruner(cnn, opt)
    train(cnn, opt, batches(5 * SPE))
    zeros = layer_zeros(cnn)
    pruner.finalize()
    pruner.finalize()  # idempotent
    names = [n for n, _ in cnn.named_parameters()]
    assert not any(n.endswith("_orig") for n in names)
    assert not any(n.endswith("_mask") for n, _ in cnn.named_buffers())
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in cnn.modules())
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    assert layer_zeros(cnn) == zeros and zeros["fc1.weight"] > 0
    live = {id(p) for p in cnn.parameters()}
    assert all(id(p) in live for g in opt.param_groups for p in g["params"])
    before = cnn.fc1.weight.detach().clone()
    train(cnn, opt, batches(1, offset=99))
    assert not torch.equal(before, cnn.fc1.weight)  # the optimizer still trains the model


# Updates of _pruner()'s schedule with update_frequency 0.8 (SPE 5, epochs 1.0-4.0): steps 5, 9,
# 13, 18 (epoch 3.4 falls a float hair short of 2.6 + 0.8 at step 17, as in SparseML) and the
# forced final update at step 20. A cut after `cut` steps resumes at step `cut`.
RESUME_FREQUENCY = 0.8
RESUME_CUTS = {
    "between-updates": 11,  # neither the last step before the cut (10) nor the next (11) updates
    "update-next": 13,  # the first step after resuming updates the masks
    "update-last": 14,  # the last step before the cut (13) updated the masks
    "final-update-next": 20,  # the first step after resuming is the forced final update
}
RESUME_SCOPES = {
    "layerwise": {},
    "global": {"scope": "global"},
    "block4": {"mask_type": "block4"},
    "global-block4": {"scope": "global", "mask_type": "block4"},
}


@pytest.mark.parametrize("cut", list(RESUME_CUTS))
@pytest.mark.parametrize("scope", list(RESUME_SCOPES))
def test_resume_equals_uninterrupted(scope, cut):
    total, cut_at = 6 * SPE, RESUME_CUTS[cut]
    updates = {e.step for e in update_events(total, SPE, 1.0, 4.0, RESUME_FREQUENCY)}
    assert (cut_at in updates) == cut.endswith("update-next")
    assert (cut_at - 1 in updates) == (cut == "update-last")
    kw = {"update_frequency": RESUME_FREQUENCY, **RESUME_SCOPES[scope]}
    data = batches(total)
    ref = make_cnn()
    ref_opt = _opt(ref)
    ref_pruner = _pruner(ref, ref_opt, **kw)
    ref_hist = train(ref, ref_opt, data)
    ref_pruner.finalize()

    a = make_cnn()
    a_opt = _opt(a)
    a_pruner = _pruner(a, a_opt, **kw)
    hist = train(a, a_opt, data[:cut_at])
    buf = io.BytesIO()
    torch.save(
        {"model": a.state_dict(), "opt": a_opt.state_dict(), "gmp": a_pruner.state_dict()}, buf
    )
    buf.seek(0)
    saved = torch.load(buf)

    b = make_cnn(seed=123)  # different init: everything must come from the checkpoint
    b_opt = _opt(b)
    b_pruner = _pruner(b, b_opt, **kw)
    b_pruner.load_state_dict(saved["gmp"])
    b.load_state_dict(saved["model"])
    b_opt.load_state_dict(saved["opt"])
    hist += train(b, b_opt, data[cut_at:])
    b_pruner.finalize()
    assert hist == ref_hist  # zeros per layer after every step
    assert ref_hist[-1] != ref_hist[cut_at - 1]  # pruning went on after the cut
    for (n, p), (_, q) in zip(ref.named_parameters(), b.named_parameters()):
        assert torch.equal(p != 0, q != 0), n
        assert torch.equal(p, q), n
    ref_state, b_state = ref_opt.state_dict()["state"], b_opt.state_dict()["state"]
    assert all(
        torch.equal(ref_state[k]["momentum_buffer"], b_state[k]["momentum_buffer"])
        for k in ref_state
    )


def test_leave_enabled_false_releases_without_momentum_regrowth(cnn):
    opt = _opt(cnn)
    _pruner(cnn, opt, leave_enabled=False, end_epoch=2.0)
    train(cnn, opt, batches(2 * SPE + 1))  # the end step is 2 * SPE
    assert not hasattr(cnn.fc1, "weight_mask")  # released: plain Parameter again
    pruned = cnn.fc1.weight == 0
    assert int(pruned.sum()) == round(0.8 * cnn.fc1.weight.numel())
    for _ in range(3):  # zero gradients: only momentum / weight decay could move pruned weights
        for p in cnn.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
    assert bool((cnn.fc1.weight[pruned] == 0).all())


def test_deepcopy_while_pruning_is_active(cnn):
    opt = _opt(cnn)
    _pruner(cnn, opt)
    train(cnn, opt, batches(3 * SPE))
    twin = copy.deepcopy(cnn)
    x = batches(1)[0][0]
    assert torch.equal(twin(x), cnn(x))
    assert layer_zeros(twin) == layer_zeros(cnn)


def test_sparsity_report_active_finalized_and_table(cnn):
    opt = _opt(cnn)
    pruner = _pruner(cnn, opt)
    train(cnn, opt, batches(5 * SPE))
    active = sparsity_report(cnn)
    assert [x.name for x in active.layers] == [
        "conv1.weight",
        "conv2.weight",
        "fc1.weight",
        "fc2.weight",
    ]
    pruner.finalize()
    final = sparsity_report(cnn)
    assert final == active
    assert final.total_zeros == sum(
        int((p == 0).sum()) for n, p in cnn.named_parameters() if n.endswith("weight")
    )
    assert "fc1.weight" in str(final) and "total" in str(final)
    assert sparsity_report(cnn, params="re:.*bias").total_zeros == 0


def test_from_param_starts_at_current_sparsity(cnn):
    with torch.no_grad():
        cnn.fc1.weight[:, :64] = 0  # 25% zeros already (32 x 256 weight)
    opt = _opt(cnn)
    GMP(
        cnn,
        opt,
        init_sparsity="__FROM_PARAM__",
        final_sparsity=0.5,
        start_step=0,
        end_step=10,
        params=["fc1.weight", "conv2.weight"],
    )
    hist = train(cnn, opt, batches(1))
    # Step 0 prunes each tensor to its own current sparsity: 25% for fc1, 0% for conv2.
    assert hist[0] == {"conv1.weight": 0, "conv2.weight": 0, "fc1.weight": 64 * 32, "fc2.weight": 0}


def test_constant_modifier_holds_existing_zeros(cnn):
    with torch.no_grad():
        cnn.fc1.weight[:, :100] = 0
    opt = _opt(cnn)
    GMP(
        cnn,
        opt,
        modifiers=[
            PruningModifierSpec(
                "constant", ("fc1.weight",), start_epoch=-1, end_epoch=-1, update_frequency=-1
            )
        ],
        steps_per_epoch=SPE,
    )
    hist = train(cnn, opt, batches(4))
    assert [h["fc1.weight"] for h in hist] == [3200] * 4


def test_select_params_rules():
    m = nn.ModuleDict({"emb": nn.Embedding(5, 4), "lin": nn.Linear(4, 4), "bn": nn.BatchNorm1d(4)})
    names = lambda pats: [n for n, _, _ in select_params(m, pats)]  # noqa: E731
    assert names("__ALL_PRUNABLE__") == ["emb.weight", "lin.weight"]  # Embedding, as SparseML
    assert names("re:lin") == ["lin.weight", "lin.bias"]
    assert names(["lin.weight", "re:emb.*"]) == ["emb.weight", "lin.weight"]
    assert len(names("__ALL__")) == 5
    with pytest.raises(ValueError, match="`params` entry 'lin.bias' is not prunable"):
        select_params(m, ["lin.bias"])
    with pytest.raises(ValueError, match="`params` entry 'bn.weight' is not prunable"):
        select_params(m, "bn.weight")
    with pytest.raises(ValueError, match="`params` pattern 're:conv' matches no parameter"):
        select_params(m, ["lin.weight", "re:conv"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"final_sparsity": 1.0}, r"`final_sparsity` must be in \[0, 1\); got 1.0"),
        ({"init_sparsity": -0.1}, r"`init_sparsity` must be in \[0, 1\); got -0.1"),
        ({"end_epoch": 0.5}, r"`end_epoch` must be > `start_epoch`.*end_epoch=0.5"),
        ({"update_frequency": 0}, r"`update_frequency` must be > 0 or -1.*got 0"),
        ({"params": ["nope.weight"]}, r"`params` pattern 'nope.weight' matches no parameter"),
        ({"params": ["fc1.bias"]}, r"`params` entry 'fc1.bias' is not prunable"),
        ({"mask_type": "block5"}, r"`mask_type` must be .*got 'block5'"),
        ({"inter_func": "cosine"}, r"`inter_func` must be one of .*got 'cosine'"),
        ({"scope": "per_channel"}, r"`scope` must be one of .*got 'per_channel'"),
        ({"steps_per_epoch": 0}, r"`steps_per_epoch` must be a positive int; got 0"),
        ({"mask_type": "2:4"}, r"`init_sparsity` must be within 1e-2 of 0.5"),
        ({"scope": "global", "init_sparsity": "__FROM_PARAM__"}, r"`init_sparsity`.*layerwise"),
    ],
)
def test_bad_input_raises(cnn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _pruner(cnn, _opt(cnn), **kwargs)


def test_bad_modifier_combinations_raise(cnn):
    spec = PruningModifierSpec("gmp", ("fc1.weight",), 0.05, 0.5, 0.0, 2.0)
    with pytest.raises(ValueError, match="already pruned by modifier 0"):
        GMP(cnn, _opt(cnn), modifiers=[spec, spec], steps_per_epoch=SPE)
    with pytest.raises(ValueError, match="`modifiers` replaces the keyword settings"):
        GMP(cnn, _opt(cnn), modifiers=[spec], steps_per_epoch=SPE, final_sparsity=0.5)


RECIPE = """
num_epochs: 4
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
  - !SetLearningRateModifier
    start_epoch: 2.0
    learning_rate: 0.01
  - !GMPruningModifier
    params: []
    init_sparsity: 0.05
    final_sparsity: {0.7: ['conv2.weight', 'fc1.weight'], 0.5: ['fc2.weight']}
    start_epoch: 0.0
    end_epoch: 2.0
    update_frequency: 0.5
"""


def test_from_recipe_per_layer_targets_lr_and_finalize(cnn):
    opt = _opt(cnn)  # per-layer targets: one spec per target, as SparseML's dict form
    pruner = GMP.from_recipe(RECIPE, cnn, opt, steps_per_epoch=SPE)
    assert pruner.epochs == 4 and pruner.lr is not None
    history = train(cnn, opt, batches(int(pruner.epochs) * SPE))
    assert history[-1] == {
        "conv1.weight": 0,
        "conv2.weight": round(0.7 * 16 * 8 * 9),
        "fc1.weight": round(0.7 * 32 * 256),
        "fc2.weight": round(0.5 * 10 * 32),
    }
    assert opt.param_groups[0]["lr"] == 0.01  # the recipe's LR modifier ran
    assert pruner.state_dict()["lr"] is not None
    pruner.finalize()
    assert not opt._optimizer_step_pre_hooks  # LR hook removed too
