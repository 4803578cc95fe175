"""aidi.models: what runs on the device.

Modules (import them directly; this package imports nothing so that ``import
aidi.models.layers`` stays light):

- :mod:`~aidi.models.layers`: layer specs from a scenario, shape inference, executed-layer geometry.
- :mod:`~aidi.models.data`: the ``digits`` data set (8x8) and synthetic inputs.
- :mod:`~aidi.models.net`: torch module, deterministic cached training, random weights, BN folding.
- :mod:`~aidi.models.q15`: Q15 formats and the exact integer reference (the semantics contract).
- :mod:`~aidi.models.kernels`: numba tile kernels with those semantics.
- :mod:`~aidi.models.tiling`: iNAS execution designs, task graphs, SRAM/FRAM plans, auto design.
- :mod:`~aidi.models.functional`: intermittent execution over simulated FRAM/SRAM.
- :mod:`~aidi.models.prepare`: scenario ``[model]`` -> QModel + functional input sample.
"""
