// cmd_adain.cpp — `normkit adain CONTENT.png STYLE.png OUT.png`: AdaIN on raw pixels, i.e.
// colour transfer: each RGB channel of the content gets the style's per-channel mean and std.
// PNG through libpng's simplified API; the interleaved pixels are handed to normkit as a
// channels-last (1, 3, H, W) view, so nothing is transposed. Bad files exit 1 with a message.
#include <CLI/CLI.hpp>
#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.hpp"
#include "normkit/normkit.hpp"

namespace {

struct AdainOptions {
  std::string content, style, out;
  double eps = 1e-5;
  double strength = 1.0;
};

[[noreturn]] void io_error(const std::string& msg) { throw std::runtime_error("[adain] " + msg); }

// 8-bit pixels, `channels` (3 or 4) interleaved per pixel.
struct Image {
  int64_t width = 0, height = 0, channels = 3;
  std::vector<uint8_t> pixels;
};

Image read_png(const std::string& path, bool keep_alpha) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) io_error("cannot open '" + path + "': " + std::strerror(errno));
  unsigned char sig[8] = {};
  const size_t got = std::fread(sig, 1, sizeof sig, f);
  std::fclose(f);
  if (got != sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) io_error("'" + path + "' is not a PNG file");
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str()))
    io_error("cannot read '" + path + "': " + img.message);
  Image out;
  out.channels = keep_alpha && (img.format & PNG_FORMAT_FLAG_ALPHA) ? 4 : 3;
  img.format = out.channels == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;  // 8-bit sRGB; alpha over black
  out.width = img.width, out.height = img.height;
  out.pixels.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, out.pixels.data(), 0, nullptr)) {
    const std::string msg = img.message;
    png_image_free(&img);
    io_error("'" + path + "' is corrupt: " + msg);
  }
  return out;
}

void write_png(const std::string& path, const Image& im) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(im.width);
  img.height = static_cast<png_uint_32>(im.height);
  img.format = im.channels == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&img, path.c_str(), 0, im.pixels.data(), 0, nullptr))
    io_error("cannot write '" + path + "': " + img.message);
}

// The RGB planes of an interleaved image as a logical (1, 3, H, W) view: channel stride 1.
normkit::Strides rgb_strides(const Image& im) {
  const int64_t c = im.channels;
  return {im.height * im.width * c, 1, im.width * c, c};
}

void print_stats(const char* name, const std::vector<float>& v, const Image& im) {
  std::cout << "  " << std::left << std::setw(8) << name << std::right;
  const int64_t n = im.width * im.height;
  for (int64_t ch = 0; ch < 3; ++ch) {
    double s = 0, s2 = 0;
    for (int64_t p = 0; p < n; ++p) s += v[size_t(p * im.channels + ch)];
    const double m = s / double(n);
    for (int64_t p = 0; p < n; ++p) s2 += std::pow(v[size_t(p * im.channels + ch)] - m, 2);
    std::cout << "  " << "RGB"[ch] << " mean " << std::fixed << std::setprecision(1) << std::setw(5) << m
              << " std " << std::setw(5) << std::sqrt(s2 / double(n));
  }
  std::cout << "\n";
}

void run_adain(const AdainOptions& o) {
  if (!(o.strength >= 0 && o.strength <= 1))
    throw normkit::Error("[adain] --strength=" + std::to_string(o.strength) + " must lie in [0, 1]");
  const Image content = read_png(o.content, true), style = read_png(o.style, false);
  const std::vector<float> c(content.pixels.begin(), content.pixels.end());
  const std::vector<float> s(style.pixels.begin(), style.pixels.end());
  std::vector<float> y(c.size());
  const normkit::Shape cs{1, 3, content.height, content.width}, ss{1, 3, style.height, style.width};
  normkit::adain_forward<float>({c.data(), cs, rgb_strides(content)}, {s.data(), ss, rgb_strides(style)},
                                {y.data(), cs, rgb_strides(content)}, o.eps);
  Image out = content;  // keeps the content's alpha channel, if any
  const int64_t n = content.width * content.height;
  for (int64_t p = 0; p < n; ++p)
    for (int64_t ch = 0; ch < 3; ++ch) {
      const size_t i = size_t(p * content.channels + ch);
      y[i] = float(o.strength) * y[i] + float(1 - o.strength) * c[i];
      out.pixels[i] = uint8_t(std::lround(std::clamp(y[i], 0.0f, 255.0f)));
    }
  write_png(o.out, out);
  std::cout << "adain: " << o.content << " (" << content.width << "x" << content.height << ") in the colours of "
            << o.style << " (" << style.width << "x" << style.height << ") -> " << o.out << "\n";
  print_stats("content", c, content);
  print_stats("style", s, style);
  print_stats("output", y, content);
}

}  // namespace

void add_adain_command(CLI::App& app) {
  auto opts = std::make_shared<AdainOptions>();
  auto* sub = app.add_subcommand(
      "adain", "Colour transfer with AdaIN: the content image in the style image's per-channel "
               "mean and std (PNG in, PNG out)");
  sub->add_option("content", opts->content, "content image (PNG)")->required();
  sub->add_option("style", opts->style, "style image (PNG); its size may differ")->required();
  sub->add_option("out", opts->out, "output image (PNG, the content's size)")->required();
  sub->add_option("--eps", opts->eps, "added to the variances before the square root (default 1e-5)");
  sub->add_option("--strength", opts->strength,
                  "blend: strength * adain + (1 - strength) * content, in [0, 1] (default 1)");
  sub->callback([opts] { run_adain(*opts); });
}
