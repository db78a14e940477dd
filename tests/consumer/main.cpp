// main.cpp — the program an outside project writes against an installed normkit: a
// LayerNorm through the functional API and through the layer, plus an error caught across
// the shared-library boundary. Built by cmake/CMakeLists.txt and by the pkg-config g++ line.
#include <normkit/normkit.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

int main() {
  const normkit::Shape shape{2, 3, 4};
  std::vector<float> x(24), y(24);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7) % 11) - 3.5f;

  normkit::LayerNormArgs<float> args;
  args.normalized_shape = {3, 4};
  normkit::layer_norm_forward<float>({x.data(), shape}, {y.data(), shape}, args);
  for (int row = 0; row < 2; ++row) {  // each row of 12: mean 0, biased variance ~1
    double m = 0, v = 0;
    for (int i = 0; i < 12; ++i) m += y[row * 12 + i] / 12.0;
    for (int i = 0; i < 12; ++i) v += (y[row * 12 + i] - m) * (y[row * 12 + i] - m) / 12.0;
    if (std::fabs(m) > 1e-5 || std::fabs(v - 1) > 1e-3) {
      std::printf("consumer: row %d has mean %g variance %g\n", row, m, v);
      return 1;
    }
  }

  normkit::LayerNorm<float> layer({3, 4});
  std::vector<float> y2(24);
  layer.forward({x.data(), shape}, {y2.data(), shape});
  if (std::memcmp(y.data(), y2.data(), y.size() * sizeof(float)) != 0) {
    std::printf("consumer: LayerNorm layer differs from layer_norm_forward\n");
    return 1;
  }

  try {  // normalized_shape not matching the trailing dims: normkit::Error, caught here
    args.normalized_shape = {5};
    normkit::layer_norm_forward<float>({x.data(), shape}, {y.data(), shape}, args);
    std::printf("consumer: expected normkit::Error\n");
    return 1;
  } catch (const normkit::Error& e) {
    std::printf("consumer: caught \"%s\"\n", e.what());
  }
  std::printf("consumer: normkit %s LayerNorm ok\n", NORMKIT_VERSION);
  return 0;
}
