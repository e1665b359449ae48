"""Learning experiments: seeds, the real-data runs, the PoseNet diagnosis, the best-epoch
rule, the V2 comparison. They train and record what they find in benchmarks/RESULTS.md."""
