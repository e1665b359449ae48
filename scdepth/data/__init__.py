"""Data: the SC-Depth folder layout, datasets, the synthetic generator and data tools.

- specs.py     DATASETS: per-dataset GT storage, evaluation range and crop, default sizes
- layout.py    reading the layout; validate_layout / validate_testing check it up front
- transforms.py  flip / scale-and-crop / resize with exact intrinsics; normalisation
- folders.py   TrainFolder, ValFolder, TestFolder (torch Datasets)
- loader.py    the trainer's one DataLoader (batches drawn from seed, epoch and rank)
- synth.py     synthetic video (render.py: ray caster, textures.py, scenes.py: presets)
- prepare.py   a raw recording -> scene (sources/: one importer a format)
- pseudo.py    leres_depth/ from a TorchScript or torch.hub depth model
"""
