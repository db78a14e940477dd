// study/gemm.hpp — one row-major GEMM entry point for float and double over OpenBLAS's CBLAS.
// The study network runs in float; the gradient tests run the same code in double, so every
// layer is a template and reaches BLAS only through this overload pair.
#pragma once

#include <cblas.h>

namespace study {

// C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, all row-major.
inline void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
              n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
              n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace study
