// study/tests/test_net.cpp — the whole network with each normalization: parameter and
// input gradients against finite differences (double, training mode), eval mode classifying
// each image independently of its batch, and training runs that reproduce from their seed.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "net.hpp"
#include "train.hpp"

using namespace study;

namespace {

const NormKind kAll[] = {NormKind::None, NormKind::Batch, NormKind::Group, NormKind::Layer,
                         NormKind::Instance};

NetConfig small(NormKind k) {
  NetConfig c;
  c.norm = k;
  c.in_h = 8;
  c.in_w = 7;
  c.c1 = 4;
  c.c2 = 6;
  c.c3 = 8;
  c.groups = 2;
  c.classes = 5;
  return c;
}

std::vector<double> randn(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<double> v(n);
  for (double& x : v) x = r.normal();
  return v;
}

}  // namespace

class NetGrad : public ::testing::TestWithParam<NormKind> {};

TEST_P(NetGrad, MatchesFiniteDifferences) {
  const NetConfig cfg = small(GetParam());
  Net<double> net(cfg);
  Rng rng(5);
  net.init(rng);
  // Non-trivial affine parameters, so their gradients are exercised off the identity.
  for (ParamRef<double>& p : net.params())
    if (!p.decay)
      for (size_t i = 0; i < p.size; ++i) p.value[i] += 0.3 * rng.normal();
  const int n = 3;
  std::vector<double> x = randn(static_cast<size_t>(n) * cfg.in_h * cfg.in_w, 8);
  const std::vector<uint8_t> labels = {1, 4, 0};
  std::vector<double> dz(static_cast<size_t>(n) * cfg.classes);
  auto loss = [&] {
    const double* z = net.forward(x.data(), n);
    return softmax_xent(z, labels.data(), n, cfg.classes, dz.data(), nullptr);
  };
  loss();
  net.zero_grad();
  net.backward(x.data(), dz.data(), n);
  int checked = 0;
  for (ParamRef<double>& p : net.params()) {
    const std::vector<double> grad(p.grad, p.grad + p.size);
    const size_t stride = std::max<size_t>(1, p.size / 7);  // up to ~7 entries per tensor
    for (size_t i = 0; i < p.size; i += stride) {
      const double keep = p.value[i], h = 1e-6;
      p.value[i] = keep + h;
      const double lp = loss();
      p.value[i] = keep - h;
      const double lm = loss();
      p.value[i] = keep;
      const double fd = (lp - lm) / (2 * h);
      EXPECT_NEAR(grad[i], fd, 1e-6 + 1e-5 * std::abs(fd))
          << norm_name(cfg.norm) << " param of size " << p.size << " [" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

INSTANTIATE_TEST_SUITE_P(AllNorms, NetGrad, ::testing::ValuesIn(kAll),
                         [](const auto& info) { return norm_name(info.param); });

TEST(Net, EvalModeClassifiesEachImageOnItsOwn) {
  for (NormKind k : kAll) {
    const NetConfig cfg = small(k);
    Net<double> net(cfg);
    Rng rng(2);
    net.init(rng);
    const size_t px = static_cast<size_t>(cfg.in_h) * cfg.in_w;
    std::vector<double> x = randn(4 * px, 3);
    net.forward(x.data(), 4);  // a training step's forward: updates BatchNorm's running stats
    net.train(false);
    const std::vector<double> batch(net.forward(x.data(), 4), net.forward(x.data(), 4) + 4 * cfg.classes);
    const double* alone = net.forward(x.data() + 2 * px, 1);
    for (int j = 0; j < cfg.classes; ++j)
      EXPECT_NEAR(alone[j], batch[2 * cfg.classes + j], 1e-12) << norm_name(k);
  }
}

TEST(Train, RunsReproduceFromTheirSeedEvenConcurrently) {
  FashionMnist data;
  for (Dataset* d : {&data.train, &data.test}) {
    d->count = d == &data.train ? 64 : 40;
    d->height = d->width = 28;
    Rng r(d == &data.train ? 1 : 2);
    d->images.resize(static_cast<size_t>(d->count) * 28 * 28);
    for (float& v : d->images) v = static_cast<float>(r.normal());
    for (int i = 0; i < d->count; ++i) d->labels.push_back(static_cast<uint8_t>(r.below(10)));
  }
  RunConfig c;
  c.norm = NormKind::Batch;
  c.batch = 8;
  c.epochs = 2;
  c.lr = 0.05;
  c.eval_batch = 16;
  const RunResult a = train_run(data, c);
  RunResult b, other;
  RunConfig c2 = c;
  c2.norm = NormKind::Group;
  std::thread t([&] { other = train_run(data, c2); });
  b = train_run(data, c);
  t.join();
  EXPECT_EQ(a.train_loss, b.train_loss);
  EXPECT_EQ(a.test_error, b.test_error);
  EXPECT_TRUE(std::isfinite(a.train_loss));
  EXPECT_TRUE(std::isfinite(other.train_loss));
  c.seed = 2;
  EXPECT_NE(train_run(data, c).train_loss, a.train_loss);
}
