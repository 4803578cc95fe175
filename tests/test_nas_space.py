"""NAS search space: operations stay inside the space, ids are stable, layers parse."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidi.models.layers import geometry, parse_network
from aidi.models.nas.space import Arch, SearchSpace, Stage, StageSpace, digits_space, inas_space, space_for

SPACES = {"digits": digits_space(), "inas": inas_space(), "tiny": space_for("tinyimagenet")}
seeds = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_sample_mutate_crossover_stay_inside(name, seed):
    sp = SPACES[name]
    rng = np.random.default_rng(seed)
    a, b = sp.sample(rng), sp.sample(rng)
    m = sp.mutate(a, rng)
    c = sp.crossover(a, b, rng)
    for x in (a, b, m, c):
        assert sp.contains(x)
        assert sp.decode(sp.encode(x)) == x
    assert m != a  # a mutation changes exactly one decision
    assert sum(x != y for x, y in zip(sp.encode(a), sp.encode(m))) == 1
    ca, cb, cc = sp.encode(a), sp.encode(b), sp.encode(c)
    assert all(z in (x, y) for x, y, z in zip(ca, cb, cc))


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_every_member_is_a_valid_network(seed):
    sp = SPACES["digits"]
    a = sp.sample(np.random.default_rng(seed))
    net = parse_network(a.to_layers(), a.input_shape)
    assert net.output_shape == (10, 1, 1)
    assert all(g.op in ("conv", "dwconv", "maxpool", "avgpool", "fc") for g in geometry(net))


def test_extremes_fit_and_the_space_refuses_members_that_would_not():
    for sp in SPACES.values():
        for a in (sp.largest(), sp.largest("conv"), sp.smallest()):
            parse_network(a.to_layers(), a.input_shape)
    with pytest.raises(ValueError, match="kernel"):
        SearchSpace("tiny", (1, 8, 8), (StageSpace(("conv",), (7,), (4,), (2,)),), padding="valid")
    with pytest.raises(ValueError, match="odd"):
        SearchSpace("even", (1, 8, 8), (StageSpace(("conv",), (2,), (4,), (1,)),))


def test_id_is_stable_and_content_based():
    a = Arch((1, 8, 8), (Stage("conv", 3, 8, 1), Stage("sep", 5, 16, 2)), (0,), "same", 10, "flatten")
    assert a.id == Arch.from_dict(a.to_dict()).id
    assert a.id == "04127dd55fb69715"  # a hash of the content: changing it invalidates every cache
    assert Arch((1, 8, 8), (Stage("conv", 3, 8, 1), Stage("sep", 5, 16, 1)), (0,), "same", 10, "flatten").id != a.id
    assert digits_space().contains(a)


def test_inas_space_matches_the_paper():
    sp = inas_space()
    assert sp.input_shape == (3, 32, 32) and len(sp.stages) == 5 and sp.padding == "valid"
    assert all(s.kernels == (1, 3, 5, 7) and s.filters == (4, 8, 16, 24) for s in sp.stages)
    assert sp.size() == 16**5
    layers = sp.largest().to_layers()
    assert [d["type"] for d in layers][-2:] == ["gap", "fc"]


def test_sampling_is_seeded():
    sp = SPACES["digits"]
    xs = [sp.sample(np.random.default_rng(3)) for _ in range(2)]
    assert xs[0] == xs[1]
