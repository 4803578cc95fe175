"""aidi.models: what runs on the device.

Modules (import them directly; this package imports nothing so that ``import
aidi.models.layers`` stays light):

- :mod:`~aidi.models.layers`: layer specs from a scenario (chains or graphs), shape inference, the executed
  layers as a graph of tensors.
- :mod:`~aidi.models.ops`: the per-operation traits table (one row per executed operation).
- :mod:`~aidi.models.cache`: the cache folder (``$AIDI_CACHE_DIR``) for weights, supernets, decoded data.
- :mod:`~aidi.models.data`: data sets (digits, synthetic, CIFAR-10 / Tiny ImageNet folders); no torch.
- :mod:`~aidi.models.net`: torch module, deterministic cached training, random weights, BN folding.
- :mod:`~aidi.models.q15`: Q15 formats and the exact integer reference (the semantics contract).
- :mod:`~aidi.models.kernels`: numba tile kernels with those semantics.
- :mod:`~aidi.models.schedule`: the one execution plan: designs, tile grid and walk, SRAM/FRAM layout.
- :mod:`~aidi.models.costs`: per-tile cost tables (LEA/DMA, the portable-C runtime and its fit).
- :mod:`~aidi.models.design_search`: choosing execution designs (auto designs, scenario values).
- :mod:`~aidi.models.functional`: intermittent execution over simulated FRAM/SRAM.
- :mod:`~aidi.models.prepare`: scenario ``[model]`` -> QModel + functional input sample.
"""
