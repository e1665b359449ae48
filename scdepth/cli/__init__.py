"""The command-line programs (scdepth-train, -eval and -eval --pose, -infer, -prepare, -pseudo,
-synth, -export, -import-weights): one module each, a thin argparse layer over the library,
sharing the options in ``common``. No library module imports from here
(tests/test_imports.py)."""
