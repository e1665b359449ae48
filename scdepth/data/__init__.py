"""Data: the SC-Depth folder layout, datasets, the synthetic generator and data tools.

- datasets.py  DATASETS: per-dataset GT storage, evaluation range and crop, default sizes
- layout.py    reading the layout; validate_layout / validate_testing check it up front
- transforms.py  flip / scale-and-crop / resize with exact intrinsics; normalisation
- dataset.py   TrainFolder, ValFolder, TestFolder (torch Datasets)
- synth.py     scdepth-synth (render.py: ray caster, textures.py, scenes.py: presets)
- prepare.py   scdepth-prepare: a raw recording -> scene (sources/: one importer a format)
- pseudo.py    scdepth-pseudo: leres_depth/ from a TorchScript or torch.hub depth model
"""
