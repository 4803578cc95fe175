"""Layer specs: parsing, validation messages, shape inference, folding into executed layers."""

import pytest

from aidi.models.layers import (BN, DEFAULT_INPUT, DEFAULT_LAYERS, Conv, Network, default_network, geometry,
                                parse_layer, parse_network)


def test_default_network_shapes():
    net = default_network()
    assert net.input_shape == DEFAULT_INPUT
    assert net.shapes == [(8, 6, 6), (16, 4, 4), (16, 2, 2), (10, 1, 1)]
    assert net.output_shape == (10, 1, 1)
    assert [g.op for g in geometry(net)] == ["conv", "conv", "maxpool", "fc"]


def test_defaults_and_round_trip():
    net = parse_network(list(DEFAULT_LAYERS), list(DEFAULT_INPUT))
    d = net.to_dicts()
    assert d[0] == {"type": "conv", "k": 3, "filters": 8, "stride": 1, "padding": 0, "relu": True, "bias": True}
    assert d[2]["stride"] == 2  # pool stride defaults to k
    again = parse_network(d, DEFAULT_INPUT)
    assert again == net and again.key() == net.key()
    assert parse_network([{**DEFAULT_LAYERS[0], "filters": 4}] + list(DEFAULT_LAYERS[1:]), DEFAULT_INPUT).key() != net.key()


def test_specs_are_frozen():
    spec = parse_layer({"type": "conv", "k": 3, "filters": 2}, 0)
    assert isinstance(spec, Conv)
    with pytest.raises(Exception):
        spec.k = 5


def test_shape_inference_all_types():
    layers = [
        {"type": "conv", "k": 3, "filters": 6, "padding": "same"},
        {"type": "bn"},
        {"type": "relu"},
        {"type": "dwconv", "k": 3, "stride": 2, "padding": 1, "relu": True},
        {"type": "maxpool", "k": 2, "stride": 1},
        {"type": "pwconv", "filters": 5},
        {"type": "avgpool", "k": 2, "stride": 1},
        {"type": "conv", "k": 2, "filters": 4, "padding": "valid"},
        {"type": "gap"},
        {"type": "fc", "units": 3},
    ]
    net = parse_network(layers, [3, 9, 8])
    assert net.shapes == [(6, 9, 8), (6, 9, 8), (6, 9, 8), (6, 5, 4), (6, 4, 3), (5, 4, 3), (5, 3, 2), (4, 2, 1),
                          (4, 1, 1), (3, 1, 1)]
    geo = geometry(net)
    assert [g.op for g in geo] == ["conv", "dwconv", "maxpool", "conv", "avgpool", "conv", "avgpool", "fc"]
    assert [g.name for g in geo] == ["conv", "dwconv", "maxpool", "pwconv", "avgpool", "conv", "gap", "fc"]
    g0 = geo[0]
    assert g0.bn == 1 and g0.relu and g0.pad == 1 and g0.spec_indices == (0, 1, 2)
    assert geo[6].kh == 2 and geo[6].kw == 1  # gap: full (non-square) window
    assert geo[7].in_shape == (4, 1, 1) and geo[7].weight_shape == (3, 4, 1, 1)
    assert geo[1].weight_shape == (6, 1, 3, 3) and geo[1].channel_tied
    assert [g.index for g in geo] == list(range(8))


def test_fc_flattens():
    net = parse_network([{"type": "fc", "units": 7, "relu": True}], [2, 3, 4])
    (g,) = geometry(net)
    assert g.in_shape == (24, 1, 1) and g.out_shape == (7, 1, 1) and g.relu


@pytest.mark.parametrize("layers, shape, msg", [
    ([{"type": "conv", "k": 3}], [1, 8, 8], "layer 0 (conv): missing key 'filters'"),
    ([{"type": "conv", "k": 3, "filters": 2, "filter": 1}], [1, 8, 8], "layer 0 (conv): unknown key 'filter'"),
    ([{"k": 3}], [1, 8, 8], "layer 0: missing key 'type'"),
    ([{"type": "deconv"}], [1, 8, 8], "layer 0: unknown type 'deconv'"),
    ([{"type": "conv", "k": 0, "filters": 2}], [1, 8, 8], "key 'k' must be a positive integer"),
    ([{"type": "conv", "k": 3, "filters": True}], [1, 8, 8], "key 'filters' must be a positive integer"),
    ([{"type": "conv", "k": 3, "filters": 2, "relu": 1}], [1, 8, 8], "key 'relu' must be true or false"),
    ([{"type": "conv", "k": 3, "filters": 2, "padding": 3}], [1, 8, 8], "key 'padding' (top 3) must be smaller than the kernel's 3"),
    ([{"type": "conv", "filters": 2, "padding": "same"}], [1, 8, 8], "missing key 'k'"),
    ([{"type": "conv", "k": 3, "filters": 2, "padding": "full"}], [1, 8, 8], "key 'padding' must be"),
    ([{"type": "fc", "units": 2}, {"type": "maxpool", "k": 2}], [1, 8, 8], "layer 1 (maxpool): kernel 2x2 (rows x columns) larger"),
    ([{"type": "conv", "k": 9, "filters": 2}], [1, 8, 8], "layer 0 (conv): kernel 9x9 (rows x columns) larger than padded input 8x8"),
    ([{"type": "maxpool", "k": 2}, {"type": "bn"}], [1, 8, 8], "layer 1 (bn): bn must directly follow"),
    ([{"type": "bn"}], [1, 8, 8], "layer 0 (bn): bn must directly follow"),
    ([{"type": "relu"}], [1, 8, 8], "layer 0 (relu): relu must follow"),
    ([{"type": "maxpool", "k": 2, "stride": 0}], [1, 8, 8], "key 'stride' must be a positive integer"),
    ([{"type": "bn", "eps": -1}, ], [1, 8, 8], "key 'eps' must be a positive number"),
    ([], [1, 8, 8], "at least one layer"),
    (["conv"], [1, 8, 8], "layer 0: expected a table"),
    ([{"type": "gap"}], [1, 8], "model input must be [C, H, W]"),
    ([{"type": "gap"}], [1, 0, 8], "model input must be [C, H, W]"),
])
def test_bad_specs(layers, shape, msg):
    with pytest.raises(ValueError) as e:
        parse_network(layers, shape)
    assert msg in str(e.value)
    assert "\n" not in str(e.value)


def test_integral_floats_accepted():
    net = parse_network([{"type": "conv", "k": 3.0, "filters": 2}], [1, 5, 5])
    assert net.layers[0].k == 3 and isinstance(net.layers[0].k, int)


def test_parse_network_passthrough_and_bn_fields():
    net = default_network()
    assert parse_network(net) is net
    bn = parse_layer({"type": "bn", "eps": 1e-3}, 0)
    assert isinstance(bn, BN) and bn.eps == 1e-3
    assert isinstance(net, Network)
