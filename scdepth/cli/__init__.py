"""The command-line programs (scdepth-train, -eval, -infer, -prepare, -pseudo, -synth): one
module each, a thin argparse layer over the library, sharing the options in ``common``."""
