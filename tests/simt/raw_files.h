// The raw files through which tests/test_cuda_on_host.py and the host-run CUDA harnesses
// exchange tensors: values back to back, in the harness's order, nothing else.
#pragma once

#include <cstdio>
#include <vector>

namespace simt {

// Fills each vector, in order, from the file at path; false when it cannot be opened or holds
// fewer values.
template <typename... Vectors>
bool read_raw(const char* path, Vectors&... vectors) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return false;
  const bool ok =
      ((std::fread(vectors.data(), sizeof(vectors[0]), vectors.size(), f) == vectors.size()) &&
       ...);
  std::fclose(f);
  return ok;
}

// Writes v's values to the file at path; false when that fails.
template <typename T>
bool write_raw(const char* path, const std::vector<T>& v) {
  FILE* f = std::fopen(path, "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(v.data(), sizeof(T), v.size(), f) == v.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace simt
