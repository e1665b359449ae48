"""Tools for the kernels and the GPU kit: the kernels' resources, the results report, the
sanitiser workload and gpu_check.sh. They build and check; the measuring is benchmarks/."""
