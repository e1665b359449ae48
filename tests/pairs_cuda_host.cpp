// sample_dynamic_pairs' CUDA kernels (csrc/ranking/pairs_kernels.cuh), launched in the order
// pairs_cuda.cu launches them, run on the host through tests/simt/cuda_runtime.h:
//   pairs_cuda_host SCORE_DTYPE PD_DTYPE B N K SEED TAU SCORE PD OUT
// SCORE and PD (pseudo-depth) are raw arrays of B * N values of their dtype (f16, bf16, f32,
// f64); writes OUT.idx_a and OUT.idx_b (int64) and OUT.label (int8), B * K values each.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ranking/pairs_kernels.cuh"
#include "simt/raw_files.h"

using namespace scdepth::pairs;

namespace {

struct HostLaunch {
  template <typename Kernel, typename... Args>
  void operator()(unsigned int blocks, Kernel kernel, Args... args) const {
    simt::launch(blocks, kThreads, kernel, args...);
  }
};

template <typename T>
std::vector<T> read(const char* path, int64_t n) {
  std::vector<T> v(n);
  if (!simt::read_raw(path, v)) {
    std::fprintf(stderr, "cannot read %lld values from %s\n", static_cast<long long>(n), path);
    std::exit(2);
  }
  return v;
}

template <typename T>
void write(const std::string& path, const std::vector<T>& v) {
  if (!simt::write_raw(path.c_str(), v)) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(2);
  }
}

struct Pairs {
  int64_t B, N, k;
  std::vector<int64_t> idx_a, idx_b;
  std::vector<int32_t> stat;
  std::vector<int8_t> label;
};

template <typename scalar_t>
void select(Pairs& p, const char* path) {
  const auto score = read<scalar_t>(path, p.B * p.N);
  const Tiling tiling = make_tiling(p.B, p.N);
  std::vector<unsigned int> hist(p.B * num_passes<scalar_t>() * kBins, 0u);
  std::vector<SelectState> states(p.B * num_passes<scalar_t>());
  std::vector<int64_t> counts(p.B * tiling.tiles * 2);
  launch_select(HostLaunch{}, score.data(), p.B, p.N, p.k, tiling, hist.data(), states.data(),
                counts.data(), p.idx_a.data(), p.stat.data());
}

template <typename scalar_t>
void partners(Pairs& p, const char* path, uint64_t seed, double tau) {
  const auto pd = read<scalar_t>(path, p.B * p.N);
  launch_partners(HostLaunch{}, pd.data(), p.idx_a.data(), p.stat.data(), p.idx_b.data(),
                  p.label.data(), p.B, p.N, p.k, seed, tau);
}

// f(type tag) for the dtype name; false for an unknown name.
template <typename F>
bool dispatch(const std::string& dtype, F&& f) {
  if (dtype == "f32") return f(float{}), true;
  if (dtype == "f64") return f(double{}), true;
  if (dtype == "f16") return f(c10::Half{}), true;
  if (dtype == "bf16") return f(c10::BFloat16{}), true;
  std::fprintf(stderr, "unknown dtype %s\n", dtype.c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 11) {
    std::fprintf(stderr, "usage: %s SCORE_DTYPE PD_DTYPE B N K SEED TAU SCORE PD OUT\n", argv[0]);
    return 2;
  }
  const int64_t B = std::atoll(argv[3]), N = std::atoll(argv[4]), k = std::atoll(argv[5]);
  const uint64_t seed = std::strtoull(argv[6], nullptr, 10);
  const double tau = std::atof(argv[7]);
  Pairs p{B, N, k, std::vector<int64_t>(B * k), std::vector<int64_t>(B * k),
          std::vector<int32_t>(B * (N - k)), std::vector<int8_t>(B * k)};
  if (!dispatch(argv[1], [&](auto tag) { select<decltype(tag)>(p, argv[8]); })) return 2;
  if (!dispatch(argv[2], [&](auto tag) { partners<decltype(tag)>(p, argv[9], seed, tau); })) {
    return 2;
  }
  const std::string out = argv[10];
  write(out + ".idx_a", p.idx_a);
  write(out + ".idx_b", p.idx_b);
  write(out + ".label", p.label);
  return 0;
}
